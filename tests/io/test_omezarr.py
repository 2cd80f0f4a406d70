"""Writing and opening NGFF 0.5 images; opening NGFF 0.4 and plain arrays."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from cellvae.errors import CellvaeError
from cellvae.io.atomic import temporary_path
from cellvae.io.omezarr import (
    create_image,
    finalize_image,
    open_image,
    open_labels,
    write_image,
)

VOXEL = {"z": 2.0, "y": 0.5, "x": 0.5}


def test_write_then_open_round_trips_voxels_axes_and_sizes(tmp_path: Path, volume):
    path = write_image(tmp_path / "a.zarr", volume, "zyx", VOXEL, units={a: "µm" for a in "zyx"})
    image = open_image(path)
    assert image.axes == "zyx" and image.shape == volume.shape and image.dtype == np.uint16
    assert image.voxel_size == VOXEL
    assert image.units == {a: "micrometer" for a in "zyx"}
    np.testing.assert_array_equal(image.array[:], volume)
    np.testing.assert_array_equal(image.to_dask().compute(), volume)
    assert image.array.chunks == (16, 64, 64)  # 64³ default, capped at the shape


def test_pyramid_halves_yx_only_for_anisotropic_z_and_holds_block_means(tmp_path, volume):
    path = write_image(tmp_path / "a.zarr", volume, "zyx", VOXEL)
    image = open_image(path, level=1)
    assert image.levels == ["s0", "s1"]  # 64 -> 32 < 64 stops
    assert image.shape == (16, 32, 32)
    assert image.voxel_size == {"z": 2.0, "y": 1.0, "x": 1.0}
    means = volume.reshape(16, 32, 2, 32, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(image.array[:], np.round(means).astype(np.uint16))


def test_pyramid_halves_z_too_for_isotropic_data(tmp_path, rng):
    data = rng.random((16, 128, 128), dtype=np.float32)
    path = write_image(tmp_path / "iso.zarr", data, "zyx")
    shapes = [open_image(path, level=i).shape for i in range(3)]
    assert shapes == [(16, 128, 128), (8, 64, 64), (4, 32, 32)]
    assert open_image(path, level=2).voxel_size == {"z": 4.0, "y": 4.0, "x": 4.0}


def test_metadata_validates_with_ome_zarr_models_and_reader(tmp_path, volume):
    pytest.importorskip("ome_zarr_models", reason="needs ome-zarr-models (the dev extra)")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    path = write_image(tmp_path / "a.zarr", volume[None], "czyx", VOXEL)
    model = Image.from_zarr(zarr.open_group(str(path), mode="r"))
    ms = model.attributes.ome.multiscales[0]
    assert [a.name for a in ms.axes] == list("czyx")
    assert [a.type for a in ms.axes] == ["channel", "space", "space", "space"]
    node = next(iter(Reader(parse_url(str(path)))()))
    assert [d.shape for d in node.data] == [(1, 16, 64, 64), (1, 16, 32, 32)]


def test_image_pickles_without_an_open_array(tmp_path, volume):
    image = open_image(write_image(tmp_path / "a.zarr", volume, "zyx"))
    _ = image.array
    clone = pickle.loads(pickle.dumps(image))
    assert clone._array is None
    np.testing.assert_array_equal(clone.array[3], volume[3])


def test_stats_attribute_is_read_back(tmp_path, volume):
    stats = {"dtype": "uint16", "bits": 12, "channels": []}
    path = write_image(tmp_path / "a.zarr", volume, "zyx", stats=stats)
    assert open_image(path).stats == stats
    assert zarr.open_group(str(path)).attrs["cellvae"] == {"version": 1, "stats": stats}


def test_ngff04_opens_lazily_with_scale(ngff04, volume):
    image = open_image(ngff04)
    assert image.axes == "zyx" and image.voxel_size == VOXEL and image.levels == ["s0", "s1"]
    np.testing.assert_array_equal(image.array[:], volume)


def test_open_labels_finds_the_label_image_of_an_image_group(ngff04, volume):
    labels = open_labels(ngff04)
    assert labels.path == ngff04 / "labels" / "cells"
    np.testing.assert_array_equal(labels.to_dask().compute(), volume > 1000)


def test_plain_zarr_array_needs_axes(tmp_path, volume):
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), data=volume)
    with pytest.raises(CellvaeError, match=r"plain.zarr.*give its axes"):
        open_image(path)
    image = open_image(path, axes="ZYX")
    assert image.axes == "zyx" and image.voxel_size == {"z": 1.0, "y": 1.0, "x": 1.0}
    with pytest.raises(CellvaeError, match=r"3 dimensions"):
        open_image(path, axes="yx")


def test_existing_output_is_refused_and_replaced_with_overwrite(tmp_path, volume):
    path = write_image(tmp_path / "a.zarr", volume, "zyx")
    with pytest.raises(CellvaeError, match=r"a.zarr: output exists"):
        write_image(path, volume, "zyx")
    write_image(path, volume[:8], "zyx", overwrite=True)
    assert open_image(path).shape == (8, 64, 64)
    assert not temporary_path(path).exists()


def test_non_ngff_axis_order_is_refused(tmp_path, volume):
    with pytest.raises(CellvaeError, match=r"not in NGFF order"):
        write_image(tmp_path / "a.zarr", volume[None], "zcyx")


def test_create_fill_resume_finalize(tmp_path, volume):
    final = tmp_path / "out.zarr"
    arr = create_image(final, volume.shape, volume.dtype, "zyx", VOXEL, chunks=(8, 32, 32))
    arr[:8] = volume[:8]  # an "interrupted" writer
    assert not final.exists()
    arr = create_image(final, volume.shape, volume.dtype, "zyx", VOXEL, resume=True)
    np.testing.assert_array_equal(arr[:8], volume[:8])  # written chunks survive the resume
    arr[8:] = volume[8:]
    finalize_image(temporary_path(final), final)
    image = open_image(final)
    assert image.levels == ["s0", "s1"] and image.voxel_size == VOXEL
    np.testing.assert_array_equal(image.array[:], volume)
    assert not temporary_path(final).exists()


def test_missing_path_is_named(tmp_path):
    with pytest.raises(CellvaeError, match=r"nothing.zarr: no such file"):
        open_image(tmp_path / "nothing.zarr")
