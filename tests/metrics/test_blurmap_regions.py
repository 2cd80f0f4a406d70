"""Blur map bookkeeping on hand-made maps: which windows ``worst_regions`` lists, in which
order and where, and how ``upsample`` lays the map over the image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cellvae.metrics.blurmap import BlurMap


def _hand_made_map() -> BlurMap:
    """Two planes of a 10x10 map (window 8, stride 4 over 40x40 px) with known lost power."""
    grid = (2, 10, 10)
    original = np.ones(grid)
    recon = np.full(grid, 0.5)
    lost = np.zeros(grid)
    for index, value in {
        (1, 3, 4): 0.9,
        (0, 0, 0): 0.8,
        (0, 0, 1): 0.7,  # overlaps (0, 0, 0): skipped
        (0, 5, 5): 0.95,  # ratio NaN (no reconstruction power known): left out
        (0, 7, 7): 0.99,  # no original power (ratio NaN, share inf): left out
        (0, 9, 0): 0.4,
        (0, 9, 1): 0.38,  # overlaps (0, 9, 0): skipped
        (1, 9, 9): 0.35,
        (1, 0, 9): 0.3,
        (0, 4, 9): 0.25,  # the sixth and seventh are beyond the default five
        (1, 6, 0): 0.2,
        (1, 3, 6): 0.15,  # two map pixels (8 px) from (1, 3, 4): windows touch, not overlap
    }.items():
        lost[index] = value
    recon[0, 5, 5] = np.nan
    original[0, 7, 7] = 0.0
    original[0, 9, 9] = 0.0  # 0 / 0 lost over original power: no warning, left out
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(original > 0, recon / original, np.nan)
    foreground = np.arange(200, dtype=float).reshape(grid) / 200
    return BlurMap(ratio, original, recon, 8, 4, 0.25, (2, 40, 40), 2, lost, foreground)


def test_worst_regions_known_answer():
    bmap = _hand_made_map()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dividing by zero original power warns nobody
        regions = bmap.worst_regions()
    assert [r["index"] for r in regions] == [
        [1, 3, 4],
        [0, 0, 0],
        [0, 9, 0],
        [1, 9, 9],
        [1, 0, 9],
    ]
    first = regions[0]
    # window 8, stride 4: before = 2 px, the window of map pixel g covers [4g - 2, 4g + 6)
    assert first["start"] == [1, 10, 14] and first["stop"] == [2, 18, 22]
    assert first["centre"] == [1, 13.5, 17.5]
    assert first["hf_ratio"] == 0.5 and first["original_hf_power"] == 1.0
    assert first["hf_power_lost"] == 0.9
    assert first["foreground"] == (100 + 34) / 200
    # clipped at the image edges
    assert regions[1]["start"] == [0, 0, 0] and regions[1]["stop"] == [1, 6, 6]
    assert regions[2]["start"] == [0, 34, 0] and regions[2]["stop"] == [1, 40, 6]
    assert [r["foreground"] for r in regions[1:]] == [0.0, 90 / 200, 199 / 200, 109 / 200]
    everything = bmap.worst_regions(k=10)  # windows without lost power are never listed
    assert len(everything) == 8 and everything[-1]["index"] == [1, 3, 6]


def test_worst_regions_without_lost_power_rank_by_original_power_in_raster_order():
    """No lost power or foreground recorded: every window with original power scores 1;
    ties keep raster order (a stable sort), and windows (stride = window) never overlap."""
    grid = (10, 10)
    original = np.full(grid, 2.0)
    bmap = BlurMap(np.full(grid, 0.5), original, original / 2, 8, 8, 0.25, (80, 80), 2)
    regions = bmap.worst_regions(k=6)
    assert [r["index"] for r in regions] == [[0, i] for i in range(6)]
    assert {r["hf_power_lost"] for r in regions} == {2.0}
    assert {r["foreground"] for r in regions} == {1.0}


def test_upsample_repeats_only_the_analysed_axes():
    ratio = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    bmap = BlurMap(ratio, ratio, ratio, 8, 4, 0.25, (2, 10, 7), 2)
    up = bmap.upsample()
    assert up.shape == (2, 10, 7)
    np.testing.assert_array_equal(up[1, :4, :4], ratio[1, 0, 0])
    np.testing.assert_array_equal(up[:, 8:, 4:], ratio[:, 2:, 1:].repeat(2, 1).repeat(3, 2))


class _Recorder:
    """A lazy array of zeros that records every index it is read with."""

    def __init__(self, shape):
        self.shape, self.reads = shape, []

    def __getitem__(self, index):
        self.reads.append(index)
        return np.zeros(np.empty(self.shape, dtype=np.uint8)[index].shape, np.uint16)

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("read as a whole")


def test_read_fetches_only_the_bounding_box_of_the_ranges():
    from cellvae.metrics.blurmap import _read

    array = np.arange(10 * 12, dtype=np.uint8).reshape(10, 12)
    rec = _Recorder(array.shape)
    ranges = [np.array([4, 3, 3, 5]), np.array([0, 1, 1, 0])]  # mirrored indices repeat
    _read(rec, (), ranges)
    assert rec.reads == [(slice(3, 6), slice(0, 2))]
    region = _read(array, (), ranges)
    assert region.dtype == np.float64
    np.testing.assert_array_equal(region, array[np.ix_(*ranges)])


def test_foreground_levels_sample_a_large_image_with_a_stride():
    from cellvae.metrics.blurmap import foreground_levels

    rec = _Recorder((6144, 6144))  # 9 x 2**22 values: every third one along each axis
    assert foreground_levels(rec) is None  # all zeros: no distinct background
    assert rec.reads == [(slice(None, None, 3), slice(None, None, 3))]


def test_foreground_levels_of_a_small_image_see_every_pixel():
    from cellvae.metrics.blurmap import foreground_levels

    image = np.full((64, 64), 10.0)
    image[1::2, 1::2] = 200.0  # foreground only where a stride of 2 would never look
    assert foreground_levels(image) == (10.0, 200.0)


def test_integer_images_give_the_map_of_their_float_values():
    """uint8 images: the difference original - reconstruction must not wrap around."""
    from cellvae.metrics.blurmap import blur_map

    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    original[:, :24] //= 8  # a dim background half, a bright half
    recon = np.clip(original.astype(int) + rng.integers(-20, 21, original.shape), 0, 255)
    recon = recon.astype(np.uint8)
    as_int = blur_map(original, recon, window=16, stride=8)
    as_float = blur_map(original.astype(float), recon.astype(float), window=16, stride=8)
    for name in ("ratio", "original_power", "recon_power", "lost_power", "foreground"):
        np.testing.assert_allclose(getattr(as_int, name), getattr(as_float, name), rtol=1e-12)


def test_foreground_levels_edge_cases_known_answers():
    from cellvae.metrics.blurmap import foreground_levels

    assert foreground_levels(np.full((8, 8), 5.0)) is None  # constant: no background
    assert foreground_levels(np.full((8, 8), np.nan)) is None  # nothing finite
    assert foreground_levels(np.array([[0.0, 10.0]])) == (0.0, 10.0)  # two values suffice
    # background -1/+1 (median 0, std 1) and foreground at exactly 4 std: not distinct
    image = np.array([-1.0, 1.0] * 8 + [4.0] * 16).reshape(4, 8)
    assert foreground_levels(image) is None
    assert foreground_levels(np.where(image == 4.0, 4.01, image)) == (0.0, 4.01)


def test_pixel_weight_rises_linearly_from_background_to_foreground():
    from cellvae.metrics.blurmap import _pixel_weight

    for value, weight in ((0.0, 0.0), (10.0, 0.0), (12.5, 0.25), (15.0, 0.5), (40.0, 1.0)):
        region = np.full((12, 12), value)  # smoothing leaves a constant region unchanged
        np.testing.assert_allclose(_pixel_weight(region, (10.0, 20.0)), weight, atol=1e-12)
    np.testing.assert_array_equal(_pixel_weight(np.zeros((3, 3)), None), np.ones((3, 3)))


def test_blur_map_defaults_and_dimension_checks():
    from cellvae.errors import ConfigError
    from cellvae.metrics.blurmap import blur_map

    rng = np.random.default_rng(1)
    image = rng.normal(size=(64, 64))
    bmap = blur_map(image, image)
    assert (bmap.window, bmap.stride, bmap.cutoff, bmap.ndim) == (32, 16, 0.25, 2)
    volume = rng.normal(size=(2, 8, 8, 8))  # (C, Z, Y, X): three analysed axes by default
    vmap = blur_map(volume, volume, window=4)
    assert vmap.ndim == 3 and vmap.ratio.shape == (2, 4, 4, 4)
    for ndim in (1, 3):
        with pytest.raises(ConfigError, match=rf"^ndim: {ndim} is out of range; allowed \[2, 2\]"):
            blur_map(image, image, ndim=ndim)


def test_blur_map_refuses_windows_and_strides_out_of_range():
    from cellvae.errors import ConfigError
    from cellvae.metrics.blurmap import blur_map

    image = np.random.default_rng(2).normal(size=(16, 20))
    for window in (3, 17):
        with pytest.raises(
            ConfigError, match=rf"^window: {window} is out of range; allowed \[4, 16\]"
        ):
            blur_map(image, image, window=window)
    for stride in (0, 9):
        with pytest.raises(
            ConfigError, match=rf"^stride: {stride} is out of range; allowed \[1, 8\]"
        ):
            blur_map(image, image, window=8, stride=stride)
    volume = np.zeros((2, 8, 8, 8))
    with pytest.raises(ConfigError, match=r"^ndim: 4 is out of range; allowed \[2, 3\]"):
        blur_map(volume, volume, window=4, ndim=4)
    assert blur_map(image, image, window=16, stride=16).ratio.shape == (1, 2)  # both bounds
    assert blur_map(image, image, window=4, stride=1).ratio.shape == (16, 20)


class _Reads:
    """A numpy array that records the boxes it is read with."""

    def __init__(self, data):
        self.data, self.shape, self.boxes = data, data.shape, []

    def __getitem__(self, index):
        if all(s.step is None for s in index):
            self.boxes.append(tuple(s.stop - s.start for s in index))
        return self.data[index]


@pytest.mark.parametrize(("budget", "per_axis"), [(64, 1), (9 * 64, 3), (12 * 64, 3)])
def test_windows_are_read_in_blocks_of_a_bounded_number_of_values(monkeypatch, budget, per_axis):
    """``_BLOCK_VALUES`` bounds the windows x window voxels read at once: with 8x8 windows at
    stride 4, a block of ``per_axis`` windows a side spans ``4 (per_axis - 1) + 8`` pixels."""
    import cellvae.metrics.blurmap as blurmap

    rng = np.random.default_rng(3)
    image = rng.normal(size=(40, 36))
    recon = image + rng.normal(size=image.shape)
    whole = blurmap.blur_map(image, recon, window=8, stride=4)
    monkeypatch.setattr(blurmap, "_BLOCK_VALUES", budget)
    original = _Reads(image)
    blocked = blurmap.blur_map(original, recon, window=8, stride=4)
    side = 4 * (per_axis - 1) + 8
    assert max(max(b) for b in original.boxes) == side
    np.testing.assert_allclose(blocked.ratio, whole.ratio, rtol=1e-12)
