"""Patch geometry, grid and random origins, foreground scoring and rejection sampling."""

from __future__ import annotations

import numpy as np
import pytest

from cellvae.data.samplers import (
    PatchLayout,
    axis_starts,
    foreground_fraction,
    foreground_threshold,
    grid_origins,
    rejection_sample,
    uniform_origin,
)
from cellvae.errors import CellvaeError, ConfigError
from tests.data.conftest import channel_stats


def test_axis_starts_last_tile_is_flush_with_the_border():
    assert axis_starts(0, 10, 4) == [0, 4, 6]
    assert axis_starts(0, 8, 4) == [0, 4]
    assert axis_starts(3, 7, 4) == [3]


def test_grid_covers_every_voxel_of_the_region():
    region, window = ((2, 13), (0, 9)), (4, 3)
    covered = np.zeros((13, 9), dtype=int)
    origins = grid_origins(region, window)
    for oy, ox in origins:
        covered[oy : oy + 4, ox : ox + 3] += 1
    assert len(origins) == len(set(origins)) == 3 * 3
    assert np.all(covered[2:] >= 1) and np.all(covered[:2] == 0)


def test_uniform_origins_stay_inside_and_reach_both_ends(rng):
    region, window = ((5, 12), (0, 4)), (3, 4)
    origins = np.array([uniform_origin(rng, region, window) for _ in range(500)])
    assert origins[:, 0].min() == 5 and origins[:, 0].max() == 9
    assert np.all(origins[:, 1] == 0)


def test_2d_patches_from_3d_data_take_one_plane():
    layout = PatchLayout.build("v.zarr", "tczyx", (3, 2, 10, 32, 40), (16, 8), ndim=2)
    assert layout.window == (1, 16, 8)
    assert layout.n_times == 3
    assert layout.index(2, (4, 5, 6), slice(None)) == (
        2,
        slice(None),
        slice(4, 5),
        slice(5, 21),
        slice(6, 14),
    )


def test_3d_patches_need_z():
    with pytest.raises(ConfigError, match=r"^ndim"):
        PatchLayout.build("flat.zarr", "cyx", (1, 64, 64), (8, 8, 8), ndim=3)


def test_image_smaller_than_patch_names_file_and_shapes():
    with pytest.raises(
        CellvaeError, match=r"small\.zarr.*\(20, 64\).*smaller than the patch \(32, 32\)"
    ):
        PatchLayout.build("small.zarr", "yx", (20, 64), (32, 32), ndim=2)


def test_region_smaller_than_patch_is_refused():
    with pytest.raises(CellvaeError, match="region of shape"):
        PatchLayout.build("v.zarr", "yx", (64, 64), (32, 32), 2, region=((0, 20), (0, 64)))


def test_foreground_threshold_is_midway_between_median_and_99th():
    stats = channel_stats(np.r_[np.zeros(98), 200.0, 200.0])
    assert stats["percentiles"]["50"] == 0.0
    assert foreground_threshold(stats) == pytest.approx(0.5 * stats["percentiles"]["99"])


def test_foreground_fraction_takes_the_best_channel():
    patch = np.zeros((2, 4, 4))
    patch[0, :1] = 10  # 4 of 16 above 5 in channel 0
    patch[1, :2] = 3  # 8 of 16 above 1 in channel 1
    assert foreground_fraction(patch, [5.0, 1.0]) == 0.5
    assert foreground_fraction(patch, [5.0, 3.0]) == 0.25


def test_rejection_sampling_accepts_first_good_else_keeps_best():
    proposals = iter([0.1, 0.7, 0.3, 0.9])
    tried = []

    def score(p):
        tried.append(p)
        return p, f"patch{p}"

    assert rejection_sample(lambda: next(proposals), score, 0.5, 10) == (0.7, "patch0.7")
    assert tried == [0.1, 0.7]
    proposals = iter([0.1, 0.3, 0.2, 0.9])
    assert rejection_sample(lambda: next(proposals), score, 0.95, 3) == (0.3, "patch0.3")
