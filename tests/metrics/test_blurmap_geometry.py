"""Blur-map geometry: which image pixels each map pixel's window covers, and the map's size.

The documented layout: map pixel ``g`` is the window of ``window`` pixels centred on image
position ``g * stride + stride / 2`` (pixel ``i`` spanning ``[i, i + 1)``), windows past the
border see the mirrored image (``-1 -> 0``, ``n -> n - 1``), and the map has
``ceil(n / stride)`` pixels per analysed axis, so it overlays the image at scale ``stride``.
A single bright pixel has high-frequency power in exactly the windows that contain it, which
reads the layout off directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import cellvae.metrics.blurmap as blurmap
from cellvae.metrics.blurmap import blur_map


def covering(n: int, window: int, stride: int, p: int) -> np.ndarray:
    """Map pixels (along one axis of length ``n``) whose window holds pixel ``p``, mirrored."""
    hits = []
    for g in range(-(-n // stride)):
        start = g * stride + stride / 2 - window / 2  # window centred on g*stride + stride/2
        cover = np.arange(int(np.floor(start)), int(np.floor(start)) + window)
        mirrored = np.where(cover < 0, -1 - cover, np.where(cover >= n, 2 * n - 1 - cover, cover))
        hits.append(p in mirrored)
    return np.flatnonzero(hits)


@st.composite
def layouts(draw):
    window = draw(st.integers(4, 12))
    stride = draw(st.sampled_from([s for s in range(1, window + 1) if (window - s) % 2 == 0]))
    n = draw(st.integers(window, 30))
    return n, window, stride, draw(st.integers(0, n - 1))


@settings(max_examples=60, deadline=None)
@given(rows=layouts(), cols=layouts())
def test_a_bright_pixel_shows_in_exactly_the_windows_centred_around_it(rows, cols):
    (ny, wy, sy, py), (nx, wx, sx, px) = rows, cols
    window, stride = min(wy, wx), min(sy, sx)
    if (window - stride) % 2 or window > min(ny, nx):
        return
    image = np.zeros((ny, nx))
    image[py, px] = 1.0
    result = blur_map(image, np.zeros_like(image), window, stride, window_fn=None)
    assert result.ratio.shape == (-(-ny // stride), -(-nx // stride))
    seen = result.original_power > 1e-12
    want = np.zeros_like(seen)
    want[np.ix_(covering(ny, window, stride, py), covering(nx, window, stride, px))] = True
    np.testing.assert_array_equal(seen, want)


@pytest.mark.parametrize(
    ("shape", "window", "stride"),
    [
        ((50, 37), 8, 4),
        ((33, 64), 16, 8),
        ((20, 21), 6, 5),
        ((10, 11, 13), 4, 3),
        ((3, 17, 9), 5, 4),
    ],
)
def test_map_grid_rounds_up_and_upsamples_to_the_image_shape(rng, shape, window, stride):
    image = rng.normal(size=shape)
    ndim = 3 if len(shape) == 3 and shape[0] >= window else 2
    result = blur_map(image, image, window, stride, ndim=ndim)
    lead = shape[: len(shape) - ndim]
    grid = tuple(-(-n // stride) for n in shape[len(shape) - ndim :])
    assert result.ratio.shape == (*lead, *grid)
    assert np.all(np.isfinite(result.ratio))  # the last, partial row of windows is measured
    np.testing.assert_allclose(result.ratio, 1.0)
    assert result.upsample().shape == shape


def test_detail_in_the_last_rows_of_a_non_divisible_image_is_mapped(rng):
    # 45 rows, stride 8: map row 5 covers image rows 40..44; blur only there
    image = rng.normal(size=(45, 48))
    recon = image.copy()
    recon[40:] = ndimage.gaussian_filter(image, 3)[40:]
    result = blur_map(image, recon, 8, 8, window_fn=None)
    assert result.ratio.shape == (6, 6)
    assert np.all(result.ratio[-1] < 0.5) and np.all(result.ratio[:4] > 0.99)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(2, 6),
    stride=st.integers(1, 8),
    extra=st.sampled_from([0, 2, 4]),
    seed=st.integers(0, 1000),
)
def test_flipping_the_images_flips_the_map(k, stride, extra, seed):
    # centred windows are symmetric: a mirrored image gives the mirrored map
    window = stride + extra
    if window < 4:
        window += 4
    n = max(k * stride, window)
    n += (-n) % stride
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n, n))
    b = ndimage.gaussian_filter(b, 1) + a
    direct = blur_map(a, b, window, stride, window_fn=None).ratio
    flipped = blur_map(a[::-1, ::-1], b[::-1, ::-1], window, stride, window_fn=None).ratio
    np.testing.assert_allclose(flipped, direct[::-1, ::-1], rtol=1e-9)


def test_blockwise_reading_gives_the_same_map(rng, monkeypatch):
    a = rng.normal(size=(2, 37, 45))
    b = ndimage.gaussian_filter(a, (0, 1, 1))
    whole = blur_map(a, b, 8, 3, ndim=2)
    monkeypatch.setattr(blurmap, "_BLOCK_VALUES", 2 * 8**2)  # one window row at a time
    store = zarr.create_array(zarr.storage.MemoryStore(), data=a, chunks=(1, 10, 10))
    parts = blur_map(store, b, 8, 3, ndim=2)
    np.testing.assert_allclose(parts.ratio, whole.ratio, rtol=1e-12)  # FFT batch round-off
    np.testing.assert_allclose(parts.original_power, whole.original_power, rtol=1e-12)


def test_worst_region_is_centred_on_the_damage(rng):
    image = rng.normal(size=(64, 64))
    recon = image.copy()
    recon[40:48, 16:24] = ndimage.gaussian_filter(image, 2)[40:48, 16:24]  # centre (44, 20)
    result = blur_map(image, recon, 8, 8, window_fn=None)
    (worst,) = result.worst_regions(k=1)
    assert worst["index"] == [5, 2]
    assert (worst["start"], worst["stop"]) == ([40, 16], [48, 24])
    # the centre is the window's middle: 44 in pixel-edge, 43.5 in pixel-centre coordinates
    assert np.all(np.abs(np.subtract(worst["centre"], [44.0, 20.0])) <= 0.5)
    assert worst["hf_ratio"] < 0.5
    assert np.isclose(result.upsample()[40, 16], result.ratio[5, 2])
