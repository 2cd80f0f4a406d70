"""Axis order and per-axis values at ingest, checked with data that encode their coordinates.

Every voxel holds ``sum(WEIGHT[a] * index_a)`` over its axes, so after any reordering the
value at an output position says which input position it came from. Two-axis swaps are their
own inverse and cannot tell a permutation from its inverse; the three-way reorders below
(channels-last, ``xyz``, ``yzx``) can.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
import zarr

from cellvae.errors import ConfigError
from cellvae.inference.layout import Layout
from cellvae.io.ingest import ingest
from cellvae.io.omezarr import open_image

#: value contributed by one step along each axis (every size stays below 10)
WEIGHT = {"t": 10_000, "c": 1_000, "z": 100, "y": 10, "x": 1}
#: a distinct size per axis, so a wrong permutation also gives a wrong shape
SIZE = {"t": 2, "c": 3, "z": 4, "y": 9, "x": 7}


def coded(axes: str, dtype=np.int32) -> np.ndarray:
    """An array with ``axes`` (storage order) whose voxels encode their own coordinates."""
    grids = np.meshgrid(*[np.arange(SIZE[a]) for a in axes], indexing="ij")
    return sum(WEIGHT[a] * g for a, g in zip(axes, grids)).astype(dtype)


def check_coded(array: np.ndarray, axes: str) -> None:
    """``array`` (with ``axes``) holds, at every position, the code of that position."""
    assert array.shape == tuple(SIZE[a] for a in axes)
    np.testing.assert_array_equal(array, coded(axes, array.dtype))


# every order of three spatial axes, channels-last and other three-way reorders with c and t
ORDERS = [
    *("".join(p) for p in itertools.permutations("zyx")),
    "yxc",
    "xyc",
    "zyxc",
    "yxzc",
    "xczy",
    "ytxc",
    "xyzct",
]


@pytest.mark.parametrize("axes", ORDERS)
def test_plain_zarr_in_any_axis_order_is_stored_in_ngff_order(tmp_path, axes):
    src = tmp_path / "plain.zarr"
    zarr.create_array(str(src), data=coded(axes))
    image = open_image(ingest(src, tmp_path / "out.zarr", axes=axes.upper(), progress=False))
    expected = "".join(a for a in "tczyx" if a in axes)
    assert image.axes == expected
    check_coded(image.array[:], expected)


@pytest.mark.parametrize("axes", ["YXC", "XYZ", "CXY", "ZXYC"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int8])
def test_tiff_with_axes_option_is_reordered_for_every_dtype(tmp_path, axes, dtype):
    src = tmp_path / "img.tif"
    data = coded(axes.lower(), np.int32)
    if dtype == np.int8:  # codes up to ~3000 do not fit: keep the order, shrink the values
        data = (data % 127).astype(np.int8)
    tifffile.imwrite(src, data.astype(dtype), photometric="minisblack")
    image = open_image(ingest(src, tmp_path / "out.zarr", axes=axes, progress=False))
    expected = "".join(a for a in "tczyx" if a in axes.lower())
    assert image.axes == expected and image.dtype == np.dtype(dtype)
    want = coded(expected, np.int32)
    want = (want % 127) if dtype == np.int8 else want
    np.testing.assert_array_equal(image.array[:], want.astype(dtype))


def test_channel_statistics_follow_the_channel_after_reordering(tmp_path):
    # channels-last input: channel i holds values around 1000 * i; stats are per channel
    src = tmp_path / "plain.zarr"
    zarr.create_array(str(src), data=coded("yxc"))
    image = open_image(ingest(src, tmp_path / "out.zarr", axes="YXC", progress=False))
    mins = [ch["min"] for ch in image.stats["channels"]]
    maxs = [ch["max"] for ch in image.stats["channels"]]
    assert mins == [0.0, 1000.0, 2000.0]
    assert maxs == [86.0, 1086.0, 2086.0]


# -- voxel sizes and chunks given as Z Y X values ------------------------------------------


def _plain(tmp_path, axes: str, shape: tuple[int, ...]):
    src = tmp_path / f"{axes}.zarr"
    zarr.create_array(str(src), data=np.arange(np.prod(shape), dtype=np.uint16).reshape(shape))
    return src


@pytest.mark.parametrize("axes", ["yx", "xy", "cyx", "yxc"])
def test_2d_image_given_three_voxel_sizes_is_refused_and_writes_nothing(tmp_path, axes):
    shape = tuple({"c": 2, "y": 40, "x": 30}[a] for a in axes)
    src = _plain(tmp_path, axes, shape)
    message = rf"^voxel_size: 3 values given but .*{axes}\.zarr has 2 spatial axes; give 2, "
    message += r"in the order Y X$"
    with pytest.raises(ConfigError, match=message):
        ingest(src, tmp_path / "o.zarr", axes=axes, voxel_size=(5.0, 0.3, 0.7), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize("values", [(0.3,), (2.0, 0.3, 0.7, 0.7)])
def test_3d_image_given_another_count_of_voxel_sizes_is_refused(tmp_path, values):
    src = _plain(tmp_path, "zyx", (4, 40, 30))
    with pytest.raises(ConfigError, match=rf"^voxel_size: {len(values)} values given but "):
        ingest(src, tmp_path / "o.zarr", axes="zyx", voxel_size=values, progress=False)


def test_2d_image_given_two_voxel_sizes_takes_them_as_y_x(tmp_path):
    src = _plain(tmp_path, "yx", (40, 30))
    out = ingest(src, tmp_path / "o.zarr", axes="xy", voxel_size=(0.3, 0.7), progress=False)
    assert open_image(out).voxel_size == {"y": 0.3, "x": 0.7}


def test_3d_voxel_sizes_are_z_y_x_whatever_the_storage_order(tmp_path):
    src = _plain(tmp_path, "xzy", (30, 4, 40))
    out = ingest(src, tmp_path / "o.zarr", axes="xzy", voxel_size=(2.0, 0.3, 0.7), progress=False)
    image = open_image(out)
    assert image.axes == "zyx" and image.voxel_size == {"z": 2.0, "y": 0.3, "x": 0.7}


def test_2d_image_given_three_chunk_sides_takes_y_and_x(tmp_path):
    src = _plain(tmp_path, "yx", (40, 30))
    out = ingest(src, tmp_path / "o.zarr", axes="yx", chunks=(1, 16, 8), progress=False)
    assert open_image(out).array.chunks == (16, 8)


# -- inference: storage order <-> canonical (*loop, C, *spatial) ----------------------------

LAYOUTS = [
    ("yx", 2),
    ("xy", 2),
    ("yxc", 2),
    ("cxy", 2),
    ("zyx", 3),
    ("xzy", 3),
    ("yxzc", 3),
    ("zcyx", 2),  # a 2D model loops over z
    ("xyzct", 2),
    ("ytxc", 2),
]


@pytest.mark.parametrize(("axes", "ndim"), LAYOUTS)
def test_layout_moves_blocks_to_canonical_order_and_back(axes, ndim):
    layout = Layout.of(axes, ndim)
    block = coded(axes)
    canonical = layout.to_canonical(block)
    spatial = "zyx"[3 - ndim :]
    loop = "".join(a for a in axes if a not in spatial and a != "c")
    # (*loop, C, *spatial), with C = 1 when the image has no channel axis
    if "c" in axes:
        check_coded(canonical, loop + "c" + spatial)
    else:
        check_coded(np.squeeze(canonical, axis=len(loop)), loop + spatial)
        assert canonical.shape[len(loop)] == 1
    np.testing.assert_array_equal(layout.from_canonical(canonical), block)
