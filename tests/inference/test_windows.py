"""Tile grids cover the axis and their blending windows sum to one."""

import numpy as np
import pytest

from cellvae.errors import ConfigError
from cellvae.inference.windows import axis_tiling, outer, ramp, rising, tile_starts


@pytest.mark.parametrize(("size", "tile", "overlap"), [(100, 32, 8), (64, 32, 8), (33, 32, 4)])
def test_tiles_cover_the_axis_and_end_at_the_edge(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == size - tile
    assert np.all(np.diff(starts) <= tile - overlap)


def test_short_axis_gets_one_tile():
    t = axis_tiling(10, 32, 8)
    assert list(t.starts) == [0] and list(t.ends) == [10]
    np.testing.assert_array_equal(t.total, np.ones(10))


def test_neighbour_ramps_are_complementary():
    r = ramp(7)
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-15)
    assert np.all(r > 0) and np.all(r < 1)


@pytest.mark.parametrize(("size", "tile", "overlap"), [(100, 32, 8), (97, 16, 4), (200, 64, 16)])
def test_blending_weights_sum_to_one(size, tile, overlap):
    t = axis_tiling(size, tile, overlap)
    np.testing.assert_allclose(t.total, 1.0, atol=1e-12)


def test_edge_voxels_keep_full_weight_and_interior_edges_ramp():
    t = axis_tiling(100, 32, 8)
    assert t.windows[0][0] == 1.0 and t.windows[-1][-1] == 1.0
    assert t.windows[1][0] < 0.05 and t.windows[0][-1] < 0.05


def test_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(ConfigError, match="overlap"):
        tile_starts(100, 16, 16)


def test_tile_starts_known_answers():
    # step 24; the last tile is moved back to end at the edge
    np.testing.assert_array_equal(tile_starts(100, 32, 8), [0, 24, 48, 68])
    np.testing.assert_array_equal(tile_starts(96, 32, 8), [0, 24, 48, 64])
    np.testing.assert_array_equal(tile_starts(32, 32, 8), [0])
    np.testing.assert_array_equal(tile_starts(33, 32, 0), [0, 1])
    assert tile_starts(100, 32, 8).dtype == np.int64
    for tile, overlap in ((0, 0), (16, -1), (16, 17)):
        with pytest.raises(ConfigError, match=rf"^overlap: {overlap} must be in \[0, tile\)"):
            tile_starts(100, tile, overlap)
    tile_starts(100, 1, 0)  # the smallest tile


def test_ramp_known_values():
    i = np.arange(4)
    np.testing.assert_allclose(ramp(4), np.sin(np.pi * (i + 0.5) / 8) ** 2, rtol=1e-15)
    assert ramp(4).dtype == np.float64
    np.testing.assert_allclose(ramp(1), [0.5])


def test_rising_holds_the_margins_at_zero_and_one():
    np.testing.assert_array_equal(rising(10, 3), [0, 0, 0, *ramp(4), 1, 1, 1])
    np.testing.assert_array_equal(rising(6), ramp(6))
    # a margin too wide for the shared voxels shrinks so that the ramp keeps >= 1 voxel
    np.testing.assert_array_equal(rising(5, 4), [0, 0, *ramp(1), 1, 1])
    np.testing.assert_array_equal(rising(6, 9), [0, 0, *ramp(2), 1, 1])
    np.testing.assert_array_equal(rising(1, 3), ramp(1))
    np.testing.assert_array_equal(rising(4, -2), ramp(4))


def test_axis_tiling_with_a_margin_known_windows():
    t = axis_tiling(100, 32, 8, margin=2)
    np.testing.assert_array_equal(t.starts, [0, 24, 48, 68])
    np.testing.assert_array_equal(t.ends, [32, 56, 80, 100])
    assert (t.size, t.tile) == (100, 32)
    np.testing.assert_array_equal(t.windows[0][:24], 1.0)
    np.testing.assert_array_equal(t.windows[0][24:], rising(8, 2)[::-1])
    np.testing.assert_array_equal(t.windows[1][:8], rising(8, 2))
    np.testing.assert_array_equal(t.windows[3][:12], rising(12, 2))
    np.testing.assert_array_equal(t.windows[3][12:], 1.0)
    np.testing.assert_allclose(t.total, 1.0, atol=1e-12)
    # the voxels in the margin belong wholly to one tile
    assert t.windows[0][-2:].tolist() == [0, 0] and t.windows[1][:2].tolist() == [0, 0]


def test_touching_tiles_share_a_voxel_with_the_range():
    t = axis_tiling(100, 32, 8)  # tiles [0, 32), [24, 56), [48, 80), [68, 100)
    assert t.touching(0, 24).tolist() == [0]
    assert t.touching(0, 25).tolist() == [0, 1]
    assert t.touching(31, 32).tolist() == [0, 1]
    assert t.touching(32, 48).tolist() == [1]
    assert t.touching(56, 68).tolist() == [2]
    assert t.touching(80, 100).tolist() == [3]


def test_outer_of_three_vectors():
    a, b, c = np.array([1.0, 2.0]), np.array([3.0, 5.0, 7.0]), np.array([0.5, 2.0])
    out = outer([a, b, c])
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out, a[:, None, None] * b[None, :, None] * c[None, None, :])
    np.testing.assert_array_equal(outer((a,)), a)


def test_without_a_margin_the_whole_shared_stretch_ramps():
    t = axis_tiling(100, 32, 8)
    np.testing.assert_array_equal(t.windows[1][:8], ramp(8))
    np.testing.assert_array_equal(t.windows[0][24:], ramp(8)[::-1])
