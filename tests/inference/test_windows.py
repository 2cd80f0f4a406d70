"""Tile grids cover the axis and their blending windows sum to one."""

import numpy as np
import pytest

from cellvae.errors import ConfigError
from cellvae.inference.windows import axis_tiling, ramp, tile_starts


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
