"""Pyramid plans, downsampling and chunk/shard/stream layouts against known answers."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from cellvae.io.pyramid import MAX_LEVELS, downsample, plan_pyramid
from cellvae.io.store import (
    SHARD_MIN_CHUNKS,
    default_chunks,
    default_shards,
    io_chunks,
    store_dask,
    write_block,
)

YX = {"y": 2, "x": 2}
ZYX = {"z": 2, "y": 2, "x": 2}

# -- plan_pyramid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axes", "voxel", "n_levels", "steps"),
    [
        # halves y, x while the smaller side is >= 64: 256 -> 128 -> 64 -> 32
        ((256, 256), "yx", {}, None, [YX] * 3),
        # the smaller of y, x decides
        ((3, 512, 100), "cyx", {}, None, [YX]),
        # n_levels ignores min_side but stops below 2 pixels
        ((16, 16), "yx", {}, 2, [YX]),
        ((3, 40), "yx", {}, 5, [YX]),
        ((1, 40), "yx", {}, 5, []),
        # z (2 um) coarser than 1.5 x y, x (1 um) is left alone until y, x catch up
        ((64, 256, 256), "zyx", {"z": 2.0, "y": 1.0, "x": 1.0}, None, [YX, ZYX, ZYX]),
        # exactly 1.5 x the coarser of y, x still counts as isotropic enough
        ((8, 128, 128), "zyx", {"z": 1.5, "y": 1.0, "x": 0.5}, None, [ZYX, ZYX]),
        # z is halved only while it has at least 2 planes
        ((2, 256, 256), "zyx", {}, None, [ZYX, YX, YX]),
        ((1, 1, 128, 128), "tzyx", {}, None, [YX, YX]),
    ],
)
def test_pyramid_plan_known_answers(shape, axes, voxel, n_levels, steps):
    assert plan_pyramid(shape, axes, voxel, n_levels) == steps


def test_pyramid_plan_stops_at_max_levels_and_honours_min_side():
    assert len(plan_pyramid((2**20, 2**20), "yx", {})) == MAX_LEVELS - 1
    assert plan_pyramid((64, 64), "yx", {}, min_side=16) == [YX] * 3
    assert plan_pyramid((63, 64), "yx", {}) == []


# -- downsample -----------------------------------------------------------------------------


def test_mean_downsample_rounds_half_to_even_and_drops_odd_remainders():
    # blocks of 2 x 2 with means 0.25, 0.5, 0.75, 1.5 (and a row / column to drop)
    data = np.array(
        [
            [0, 1, 0, 1, 1, 1, 1, 2, 9],
            [0, 0, 1, 0, 1, 0, 2, 1, 9],
            [9, 9, 9, 9, 9, 9, 9, 9, 9],
        ],
        dtype=np.uint8,
    )
    out = downsample(da.from_array(data, chunks=(3, 3)), "yx", YX).compute()
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 1, 2]])


def test_mean_downsample_keeps_float_means_and_other_axes():
    data = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    out = downsample(da.from_array(data, chunks=(1, 3, 5)), "cyx", YX).compute()
    expected = data.reshape(2, 2, 2, 3, 2).mean(axis=(2, 4))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected)


def test_mean_downsample_of_signed_integers_near_the_dtype_limits():
    data = np.array([[-128, -127, 127, 126], [-128, -128, 127, 127]], dtype=np.int8)
    out = downsample(da.from_array(data), "yx", YX).compute()
    # means -127.75 and 126.75 round to -128 and 127
    np.testing.assert_array_equal(out, [[-128, 127]])


def test_nearest_downsample_keeps_every_second_voxel_and_the_mean_shape():
    data = np.arange(5 * 7, dtype=np.int32).reshape(5, 7)
    out = downsample(da.from_array(data, chunks=(2, 3)), "yx", YX, method="nearest").compute()
    np.testing.assert_array_equal(out, data[0:4:2, 0:6:2])
    mean = downsample(da.from_array(data, chunks=(2, 3)), "yx", YX)
    assert out.shape == mean.shape == (2, 3)


def test_downsample_of_z_only_leaves_y_and_x():
    data = np.arange(4 * 2 * 3, dtype=np.float64).reshape(4, 2, 3)
    out = downsample(da.from_array(data), "zyx", {"z": 2}).compute()
    np.testing.assert_allclose(out, (data[0::2] + data[1::2]) / 2)


# -- chunks, shards and streaming -----------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axes", "chunks"),
    [
        ((2, 3, 100, 500, 40), "tczyx", (1, 1, 64, 64, 40)),
        ((3, 1000, 100), "cyx", (1, 256, 100)),
        ((10, 300), "yx", (10, 256)),
    ],
)
def test_default_chunks(shape, axes, chunks):
    assert default_chunks(shape, axes) == chunks


@pytest.mark.parametrize(
    ("shape", "chunks", "axes", "shards"),
    [
        # 64 x 64 chunks of 64 x 64: exactly SHARD_MIN_CHUNKS, 8 chunks a side in 2D
        ((4096, 4096), (64, 64), "yx", (512, 512)),
        # 64 x 63 chunks: too few for shards
        ((4096, 4032), (64, 64), "yx", None),
        # partial chunks count: 65 x 64 of them
        ((4097, 4033), (64, 64), "yx", (512, 512)),
        # 3D: 4 chunks a side, never more than the axis has, and never along c
        ((8, 1024, 1024, 128), (1, 64, 64, 64), "czyx", (1, 256, 256, 128)),
    ],
)
def test_default_shards(shape, chunks, axes, shards):
    assert SHARD_MIN_CHUNKS == 4096
    assert default_shards(shape, chunks, axes) == shards


@pytest.mark.parametrize(
    ("shape", "block", "itemsize", "budget", "chunks"),
    [
        # the last axis grows by whole blocks up to the budget (4 blocks), then stops
        ((1000, 1000), (64, 64), 2, 64 * 64 * 2 * 4, (64, 256)),
        # the last axis is taken whole, then the one before grows
        ((100, 300), (10, 100), 1, 6000, (20, 300)),
        ((95, 250), (10, 100), 1, 6000, (20, 250)),
        # a budget below one block still gives one block
        ((100, 300), (10, 100), 1, 1, (10, 100)),
        # blocks larger than the array
        ((10, 20), (64, 64), 4, 2**20, (10, 20)),
        ((3, 40, 50), (1, 16, 16), 1, 2**20, (3, 40, 50)),
    ],
)
def test_io_chunks(shape, block, itemsize, budget, chunks):
    assert io_chunks(shape, block, itemsize, budget) == chunks


def test_write_block_is_the_shard_else_the_chunk(tmp_path):
    sharded = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=(64, 64), chunks=(8, 8), shards=(32, 16), dtype="u1"
    )
    plain = zarr.create_array(str(tmp_path / "b.zarr"), shape=(64, 64), chunks=(8, 16), dtype="u1")
    assert write_block(sharded) == (32, 16)
    assert write_block(plain) == (8, 16)


@pytest.mark.parametrize("progress", [False, True])
def test_store_dask_writes_every_voxel(tmp_path, progress):
    data = np.arange(50 * 70, dtype=np.uint16).reshape(50, 70)
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, chunks=(8, 8), shards=(16, 24), dtype="u2"
    )
    store_dask(da.from_array(data, chunks=(7, 9)), arr, progress=progress)
    np.testing.assert_array_equal(arr[:], data)
