"""Sharpness metrics against known answers: FRC, power spectra, HF ratio, blur map."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy import ndimage

from cellvae.metrics.sharpness import (
    apodization,
    blur_map,
    frc,
    half_bit_threshold,
    hf_power_ratio,
    radial_power_spectrum,
)


@pytest.fixture
def texture(rng) -> np.ndarray:
    """Fine isotropic texture (power at every frequency), 128 x 128."""
    return ndimage.gaussian_filter(rng.normal(size=(128, 128)), 0.7)


def test_hf_ratio_is_one_without_blur_and_falls_with_sigma(texture):
    ratios = [hf_power_ratio(ndimage.gaussian_filter(texture, s), texture) for s in (0.5, 1, 2, 4)]
    assert hf_power_ratio(texture, texture) == pytest.approx(1.0, abs=1e-12)
    assert all(a > b for a, b in zip([1.0, *ratios], ratios))
    assert ratios[-1] < 1e-3


def test_hf_ratio_of_a_blur_is_the_mean_squared_transfer_above_the_cutoff(rng):
    # white noise has a flat spectrum, so the ratio is the mean of |H(k)|^2 above the cutoff,
    # H being the DFT of the (periodic) blur's impulse response
    noise = rng.normal(size=(256, 256))
    blur = lambda x: ndimage.gaussian_filter(x, 1.0, mode="wrap")  # noqa: E731
    measured = hf_power_ratio(blur(noise), noise, cutoff=0.25, window=None)
    impulse = np.zeros((256, 256))
    impulse[0, 0] = 1
    transfer2 = np.abs(np.fft.fft2(blur(impulse))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij")
    expected = transfer2[np.hypot(fy, fx) > 0.125].mean()
    assert measured == pytest.approx(expected, rel=0.03)


def test_radial_power_spectrum_of_white_noise_is_flat(rng):
    freqs, power = radial_power_spectrum(rng.normal(0, 2.0, size=(256, 256)), window=None)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(0.5)
    assert np.median(power[5:]) == pytest.approx(4.0, rel=0.05)  # variance = sigma^2
    # a blurred copy loses power only at high frequencies
    _, blurred = radial_power_spectrum(ndimage.gaussian_filter(rng.normal(size=(256, 256)), 2))
    assert blurred[-10:].mean() < 1e-3 * blurred[2:6].mean()


def test_frc_of_an_image_with_itself_is_one_everywhere(texture):
    result = frc(texture, texture)
    np.testing.assert_allclose(result.correlation[1:], 1.0, atol=1e-12)
    assert result.crossing_1_7 is None and result.crossing_half_bit is None
    assert result.frequencies[-1] == pytest.approx(0.5)


def test_frc_of_independent_noise_is_near_zero_and_crosses_at_once(rng):
    a, b = rng.normal(size=(2, 256, 256))
    result = frc(a, b)
    n = result.n_points[10:]
    assert np.all(np.abs(result.correlation[10:]) < 5 / np.sqrt(n))
    assert np.abs(result.correlation[10:]).mean() < 0.05
    assert result.crossing_1_7 is not None and result.crossing_1_7 <= 0.02


def test_frc_crossing_moves_down_as_noise_hides_fine_detail(rng):
    # two noisy copies of a blurred image share signal only where the blur leaves power
    signal = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 2.0) * 50
    crossings = []
    for noise in (0.2, 1.0, 5.0):
        a = signal + rng.normal(0, noise, signal.shape)
        b = signal + rng.normal(0, noise, signal.shape)
        crossings.append(frc(a, b).crossing_1_7)
    assert crossings[0] > crossings[1] > crossings[2] > 0


def test_frc_works_in_3d(rng):
    vol = ndimage.gaussian_filter(rng.normal(size=(32, 32, 32)), 0.7)
    result = frc(vol, vol + rng.normal(0, 1e-6, vol.shape))
    assert len(result.frequencies) == 17
    assert np.nanmin(result.correlation[1:]) > 0.99


def test_half_bit_threshold_tends_to_its_limit():
    assert half_bit_threshold(np.array([1]))[0] == pytest.approx(2.1173 / 2.1173)
    assert half_bit_threshold(np.array([10**12]))[0] == pytest.approx(0.2071 / 1.2071, rel=1e-4)


def test_apodization_tapers_edges_only():
    w = apodization((64, 64), "tukey")
    assert w[0, 0] == 0 and w[32, 32] == 1
    np.testing.assert_array_equal(apodization((8, 8), None), np.ones((8, 8)))


def test_blur_in_one_quadrant_lights_up_that_quadrant_only(texture):
    blurred = texture.copy()
    blurred[64:, :64] = ndimage.gaussian_filter(texture, 2.0)[64:, :64]
    bmap = blur_map(texture, blurred, window=16)
    assert bmap.ratio.shape == (16, 16)  # 128 / stride 8
    ratio = bmap.ratio
    # map pixel g is centred on image pixel 8 g + 4; windows reach 8 px beyond their centre
    inside = ratio[9:, :7]
    assert inside.max() < 0.1
    for other in (ratio[:7, :], ratio[:, 9:]):
        assert other.min() > 0.95
    assert bmap.upsample().shape == texture.shape
    worst = bmap.worst_regions(3)
    assert len(worst) == 3
    for region in worst:
        assert region["start"][0] >= 56 and region["stop"][1] <= 72
        assert region["hf_ratio"] < 0.1


def test_blur_map_finds_blurred_slices_plane_wise_and_in_3d(rng):
    vol = ndimage.gaussian_filter(rng.normal(size=(16, 32, 32)), 0.7)
    blurred = vol.copy()
    blurred[8:] = ndimage.gaussian_filter(vol, 2.0)[8:]
    planes = blur_map(vol, blurred, window=8, ndim=2)
    assert planes.ratio.shape == (16, 8, 8)
    assert planes.ratio[:8].min() > 0.99 and planes.ratio[8:].max() < 0.1
    volume = blur_map(vol, blurred, window=8, ndim=3)
    assert volume.ratio.shape == (4, 8, 8)
    assert volume.ratio[0].min() > 0.95 and volume.ratio[3].max() < 0.1


def test_blur_map_reads_lazy_arrays_and_matches_numpy(texture, tmp_path):
    store = zarr.create_array(tmp_path / "a.zarr", shape=texture.shape, chunks=(32, 32), dtype="f8")
    store[:] = texture
    blurred = ndimage.gaussian_filter(texture, 1.0)
    lazy = blur_map(store, blurred, window=16)
    eager = blur_map(texture, blurred, window=16)
    np.testing.assert_allclose(lazy.ratio, eager.ratio)
    assert lazy.global_ratio == pytest.approx(eager.global_ratio)
    assert 0 < eager.global_ratio < 1


def test_shape_mismatch_is_refused(texture):
    with pytest.raises(ValueError, match="shapes differ"):
        frc(texture, texture[:64])
    with pytest.raises(ValueError, match="shapes differ"):
        blur_map(texture, texture[:64])
