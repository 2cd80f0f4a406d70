"""The synthetic mitochondria generator: shapes, bit depths, determinism, widths, noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from cellvae.data.synthetic import mitochondria
from cellvae.errors import ConfigError


@pytest.mark.parametrize("shape", [(96, 128), (16, 48, 64)])
def test_shapes_and_dtypes_follow_the_request(shape):
    s = mitochondria(shape, seed=0, n_tubules=5)
    assert s.image.shape == s.clean.shape == s.labels.shape == shape
    assert s.clean.dtype == np.float32
    assert s.labels.dtype == np.int32


@pytest.mark.parametrize(("bits", "dtype"), [(8, np.uint8), (12, np.uint16), (16, np.uint16)])
def test_image_uses_the_levels_of_its_bit_depth(bits, dtype):
    # a huge gain drives the brightest pixels past full scale: they must clip, not wrap
    s = mitochondria((64, 64), seed=1, n_tubules=5, bits=bits, gain=4.0 * 2**bits / 200)
    assert s.image.dtype == dtype
    assert int(s.image.max()) == 2**bits - 1
    # the default gain puts the peak expected value at 80 % of full scale
    d = mitochondria((64, 64), seed=1, n_tubules=5, bits=bits)
    expected_peak = 0.8 * (2**bits - 1)
    assert d.clean.max() == pytest.approx(expected_peak, rel=1e-5)
    assert int(d.image.max()) <= 2**bits - 1


def test_same_seed_same_image_other_seed_other_image():
    a = mitochondria((64, 64), seed=7, n_tubules=6)
    b = mitochondria((64, 64), seed=7, n_tubules=6)
    c = mitochondria((64, 64), seed=8, n_tubules=6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("width", [1.0, 2.0, 3.0])
def test_mean_tubule_width_is_the_requested_width(width):
    # one unbranched tubule of known length: mask area / centreline length = mean width
    length = 60.0
    areas = []
    for seed in range(4):
        s = mitochondria(
            (160, 160),
            seed=seed,
            n_tubules=1,
            branch_prob=0.0,
            width_range=(width, width),
            length_range=(length, length),
        )
        areas.append((s.labels > 0).sum())
    assert np.mean(areas) / length == pytest.approx(width, rel=0.2)


def test_ground_truth_tubules_are_at_most_three_pixels_wide():
    s = mitochondria((256, 256), seed=3)
    assert s.widths.min() >= 1.0 and s.widths.max() <= 3.0
    mask = s.labels > 0
    # local width at the skeleton: 2 * inscribed radius, minus the centre pixel counted twice
    local = 2 * ndimage.distance_transform_edt(mask)[skeletonize(mask)] - 1
    assert np.percentile(local, 99) <= 3.0 + 0.5  # a few junctions and crossings are wider
    assert np.median(local) <= 3.0


@pytest.mark.parametrize(
    ("bits", "gain", "background", "read_noise"),
    [(16, 1.0, 100.0, 5.0), (12, 2.0, 50.0, 3.0), (8, None, 100.0, 2.0)],
)
def test_background_noise_is_poisson_plus_read_noise(bits, gain, background, read_noise):
    s = mitochondria(
        (256, 256),
        seed=2,
        n_tubules=3,
        photons=1000.0,
        background=background,
        read_noise=read_noise,
        bits=bits,
        gain=gain,
    )
    g = s.metadata["gain"]
    flat = np.isclose(s.clean, g * background, rtol=1e-4)
    assert flat.sum() > 10_000
    residual = s.image[flat].astype(float) - s.clean[flat]
    expected = np.sqrt(g * g * background + read_noise**2 + 1 / 12)  # + rounding
    assert residual.std() == pytest.approx(expected, rel=0.1)
    assert abs(residual.mean()) < 0.1 * expected


def test_labels_sit_on_the_bright_tubules():
    s = mitochondria((128, 128), seed=4, n_tubules=8, psf_sigma=0.7)
    inside, outside = s.clean[s.labels > 0], s.clean[s.labels == 0]
    assert inside.size > 0
    assert set(np.unique(s.labels)) <= set(range(9))
    assert inside.mean() > outside.mean() + 0.3 * (s.clean.max() - outside.mean())
    # every pixel above half the peak signal lies on or next to a tubule
    bright = s.clean > outside.min() + 0.5 * (s.clean.max() - outside.min())
    near = ndimage.binary_dilation(s.labels > 0, iterations=2)
    assert near[bright].mean() > 0.99


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="bits"):
        mitochondria((32, 32), bits=10)
    with pytest.raises(ConfigError, match="ndim"):
        mitochondria((32,))
