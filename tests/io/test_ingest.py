"""Ingest: TIFF / OME-TIFF / NGFF 0.4 / plain Zarr in, NGFF 0.5 with statistics out."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cellvae.errors import CellvaeError
from cellvae.io.atomic import temporary_path
from cellvae.io.ingest import ingest
from cellvae.io.omezarr import open_image


def test_tiff_round_trip_is_voxel_exact_with_stats(tmp_path, volume):
    import tifffile

    src = tmp_path / "vol.tif"
    tifffile.imwrite(src, volume)
    out = ingest(src, tmp_path / "vol.zarr", axes="ZYX", voxel_size=(2, 0.5, 0.5), progress=False)
    image = open_image(out)
    np.testing.assert_array_equal(image.array[:], volume)
    assert image.voxel_size == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert image.stats["bits"] == 12 and image.stats["channels"][0]["max"] == 4095
    assert image.stats["channels"][0]["mean"] == pytest.approx(volume.mean())
    assert not temporary_path(out).exists()


def test_imagej_hyperstack_is_transposed_to_ngff_order(tmp_path, imagej_tiff):
    src, data = imagej_tiff  # TZCYX
    image = open_image(ingest(src, tmp_path / "h.zarr", progress=False))
    assert image.axes == "tczyx" and image.voxel_size == {"z": 2.0, "y": 0.25, "x": 0.25}
    np.testing.assert_array_equal(image.array[:], data.transpose(0, 2, 1, 3, 4))
    assert len(image.stats["channels"]) == 3
    assert image.stats["channels"][1]["min"] == data[:, :, 1].min()


def test_ome_tiff_second_series_and_voxel_option_override(tmp_path, ome_tiff):
    out = ingest(ome_tiff, tmp_path / "a.zarr", voxel_size={"x": 0.1}, progress=False)
    image = open_image(out)
    assert image.axes == "czyx" and image.voxel_size == {"z": 1.5, "y": 0.3, "x": 0.1}
    with pytest.raises(CellvaeError, match=r"image is constant"):
        ingest(ome_tiff, tmp_path / "b.zarr", series=1, progress=False)  # all ones


def test_ngff04_input_is_ingested_with_its_scale(tmp_path, ngff04, volume):
    image = open_image(ingest(ngff04, tmp_path / "v05.zarr", progress=False))
    assert image.voxel_size == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert zarr.open_group(str(image.path)).metadata.zarr_format == 3
    np.testing.assert_array_equal(image.array[:], volume)


def test_plain_zarr_input_and_custom_chunks(tmp_path, volume):
    src = tmp_path / "plain.zarr"
    zarr.create_array(str(src), data=volume)
    out = ingest(src, tmp_path / "o.zarr", axes="zyx", chunks=(8, 32, 32), progress=False)
    assert open_image(out).array.chunks == (8, 32, 32)


def test_overwrite_replaces_only_a_complete_new_output(tmp_path, volume):
    import tifffile

    src, out = tmp_path / "v.tif", tmp_path / "v.zarr"
    tifffile.imwrite(src, volume, metadata={"axes": "ZYX"})
    ingest(src, out, progress=False)
    with pytest.raises(CellvaeError, match=r"v.zarr: output exists"):
        ingest(src, out, progress=False)
    bad = tmp_path / "bad.tif"
    bad.write_text("text")
    with pytest.raises(CellvaeError):
        ingest(bad, out, overwrite=True, progress=False)
    np.testing.assert_array_equal(open_image(out).array[:], volume)  # old output intact
    src.write_bytes(b"")
    tifffile.imwrite(src, volume[:4], photometric="minisblack", metadata={"axes": "ZYX"})
    ingest(src, out, overwrite=True, progress=False)
    assert open_image(out).axes == "zyx" and open_image(out).shape == (4, 64, 64)
