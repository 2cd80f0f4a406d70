"""TIFF metadata: axes and voxel sizes from OME-XML and ImageJ tags; damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.io.tiff import open_tiff, read_tiff_meta


def test_ome_tiff_axes_voxel_sizes_and_series(ome_tiff, volume):
    meta = read_tiff_meta(ome_tiff)
    assert meta.n_series == 2 and meta.axes == "czyx" and meta.shape == (2, 16, 64, 64)
    assert meta.voxel_size == {"z": 1.5, "y": 0.3, "x": 0.3}
    assert meta.units == {a: "micrometer" for a in "zyx"}
    second = read_tiff_meta(ome_tiff, series=1)
    assert second.axes == "yx" and second.shape == (32, 48) and second.voxel_size["x"] == 0.7


def test_imagej_hyperstack_axes_and_calibration(imagej_tiff):
    path, data = imagej_tiff
    meta = read_tiff_meta(path)
    assert meta.axes == "tzcyx" and meta.shape == data.shape
    assert meta.voxel_size == {"z": 2.0, "y": 0.25, "x": 0.25}
    assert meta.units == {a: "micrometer" for a in "zyx"}


def test_lazy_array_reads_the_same_voxels(imagej_tiff):
    path, data = imagej_tiff
    with open_tiff(path) as (_, arr):
        assert arr.numblocks[:3] == (2, 4, 3)  # one block per plane: nothing read whole
        np.testing.assert_array_equal(arr[1, 2].compute(), data[1, 2])


def test_unknown_axes_need_the_option(tmp_path):
    import tifffile

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((16, 8, 8), np.uint8))
    with pytest.raises(CellvaeError, match=r"stack.tif: unknown axes 'QYX'.*--axes"):
        read_tiff_meta(path)
    assert read_tiff_meta(path, axes="ZYX").axes == "zyx"
    with pytest.raises(CellvaeError, match=r"4 letters but the data has 3"):
        read_tiff_meta(path, axes="TZYX")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("not an image\n"), "not a readable TIFF"),
    ],
    ids=["missing", "empty", "text"],
)
def test_unreadable_files_are_named(tmp_path: Path, make, message):
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(CellvaeError, match=f"bad.tif: {message}"):
        read_tiff_meta(path)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiff_is_detected(tmp_path, volume, compression):
    import tifffile

    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, volume, compression=compression, metadata={"axes": "ZYX"})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CellvaeError, match=r"cut.tif: truncated"):
        read_tiff_meta(path)
