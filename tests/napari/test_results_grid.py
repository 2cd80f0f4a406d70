"""Layers of a results folder sit on the image's physical grid, with its units and names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cellvae.napari.results import read_results, results_layers
from tests.napari.helpers import blob_image, write_results


def _by_name(layers) -> dict:
    return {kwargs["name"].split(" [")[0]: (data, kwargs, kind) for data, kwargs, kind in layers}


def _retarget_labels(out: Path, labels: Path) -> None:
    """Make ``cells.parquet``'s provenance name ``labels`` as its label image."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "cells.parquet")
    meta = json.loads(table.schema.metadata[b"cellvae"])
    meta["provenance"]["inputs"]["labels"] = str(labels)
    schema_meta = {**table.schema.metadata, b"cellvae": json.dumps(meta).encode()}
    pq.write_table(table.replace_schema_metadata(schema_meta), out / "cells.parquet")


def _image_at(tmp_path: Path, voxel: float, translation: float) -> Path:
    """Replace the fixture's original with one of voxel ``voxel`` µm placed at ``translation``."""
    import shutil

    from cellvae.io.omezarr import open_image, write_image

    path = tmp_path / "inputs" / "image.ome.zarr"
    old = open_image(path)
    data = np.asarray(old.array)
    shutil.rmtree(path)
    write_image(
        path,
        data,
        "yx",
        {"y": voxel, "x": voxel},
        units={"y": "micrometer", "x": "micrometer"},
        stats=old.stats,
        n_levels=1,
        translation={"y": translation, "x": 2 * translation},
    )
    return path


def test_plain_tiff_labels_take_the_grid_of_their_image(tmp_path, rng):
    import tifffile

    out = write_results(tmp_path, rng)
    image = _image_at(tmp_path, 0.65, 3.0)
    _, labels = blob_image(np.random.default_rng(7))
    tifffile.imwrite(tmp_path / "labels.tif", labels)  # no voxel size: 1 px per unit
    _retarget_labels(out, tmp_path / "labels.tif")
    layers, problems = results_layers(out)
    assert problems == []
    named = _by_name(layers)
    original, cells = named["original"][1], named["cells"][1]
    assert original["metadata"]["path"] == str(image)
    assert cells["scale"] == original["scale"] == [0.65, 0.65]
    assert cells["translate"] == original["translate"] == [3.0, 6.0]
    assert cells["units"] == original["units"] == ("micrometer", "micrometer")


def test_labels_of_another_shape_are_refused_in_one_line(tmp_path, rng):
    import tifffile

    out = write_results(tmp_path, rng)
    tifffile.imwrite(tmp_path / "labels.tif", np.ones((50, 96), np.int32))
    _retarget_labels(out, tmp_path / "labels.tif")
    layers, problems = results_layers(out)
    assert "cells" not in _by_name(layers)
    assert problems == [
        f"{tmp_path / 'labels.tif'}: label shape (50, 96) differs from the image's (96, 96): "
        "the labels belong to another image"
    ]


def test_units_and_axis_labels_come_from_the_ome_zarr(tmp_path, rng):
    out = write_results(tmp_path, rng)
    _image_at(tmp_path, 0.65, 0.0)
    layers, _ = results_layers(out)
    original = _by_name(layers)["original"][1]
    assert original["units"] == ("micrometer", "micrometer")
    assert original["axis_labels"] == ("y", "x")


def test_channels_are_named_after_the_stored_channel_names(tmp_path, rng):
    from cellvae.io.omezarr import write_image
    from cellvae.napari.layer_data import image_layer

    data = rng.integers(0, 200, (2, 3, 40, 50)).astype(np.uint8)
    path = write_image(
        tmp_path / "two.ome.zarr",
        data,
        "czyx",
        {"z": 2.0, "y": 0.5, "x": 0.5},
        units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        channel_names=["DAPI", "actin"],
        n_levels=1,
    )
    _, meta, _ = image_layer(path, "original [a/b]")
    assert meta["channel_axis"] == 0
    assert meta["name"] == ["original DAPI [a/b]", "original actin [a/b]"]
    assert meta["scale"] == [2.0, 0.5, 0.5] and meta["units"] == ("nanometer",) * 3
    assert meta["axis_labels"] == ("z", "y", "x")


def test_a_folder_given_as_dot_is_named_after_the_resolved_folder(results_dir, monkeypatch):
    monkeypatch.chdir(results_dir)
    layers, _ = results_layers(Path("."))
    names = [kwargs["name"] for _, kwargs, _ in layers]
    assert names[0] == "original [img/preset]"
    assert all(name.endswith(" [img/preset]") for name in names)


def test_the_newest_of_several_outputs_is_shown_and_the_others_are_named(tmp_path, rng):
    import shutil

    out = write_results(tmp_path, rng)
    older = out / "cells_first_try.parquet"
    shutil.copy(out / "cells.parquet", older)
    os.utime(older, (1e9, 1e9))
    res = read_results(out)
    assert res.files["cells"] == out / "cells.parquet"
    assert res.problems == [
        f"{out}: cells table: cells.parquet (the newest of 2; also cells_first_try.parquet)"
    ]
    os.utime(out / "cells.parquet", (9e8, 9e8))  # now the copy is the newest
    assert read_results(out).files["cells"] == older


@pytest.mark.parametrize("layout", ["flat", "renamed"])
def test_outputs_are_found_by_provenance_whatever_their_names(tmp_path, rng, layout):
    out = write_results(tmp_path, rng)
    if layout == "renamed":
        for old, new in (("cells.parquet", "nuclei.parquet"), ("recon.ome.zarr", "r.zarr")):
            (out / old).rename(out / new)
    res = read_results(out)
    assert res.files["cells"].suffix == ".parquet" and res.files["recon"].is_dir()
    assert res.original is not None and res.labels is not None and res.problems == []
