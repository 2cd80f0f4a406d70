"""``cellvae embed --finetune N`` saves the model whose codes the table holds, beside the
table, and records it as the table's checkpoint; without it nothing extra is written."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cellvae.cli import main
from cellvae.inference.embed import embed_file
from cellvae.inference.model import load_model
from cellvae.inference.reconstruct import file_sha256
from cellvae.io.provenance import read_provenance
from cellvae.io.tables import read_cell_table
from tests.inference.helpers import save_checkpoint, two_cells, write_test_image

TINY_HIER = dict(
    arch="hierarchical",
    likelihood="dlogistic",
    widths=(4, 8),
    latent_channels=2,
    global_dim=3,
    groups_per_scale=[1, 0],
    patch_size=16,
)


@pytest.fixture
def files(tmp_path, rng):
    labels, image = two_cells(rng)
    return (
        save_checkpoint(tmp_path / "base.ckpt", **TINY_HIER),
        write_test_image(tmp_path / "img.zarr", image, "yx"),
        write_test_image(tmp_path / "lab.zarr", labels, "yx"),
    )


def _embed(files, out, *extra) -> int:
    ckpt, image, labels = files
    argv = ["embed", str(image), "--ckpt", str(ckpt), "--labels", str(labels), "-o", str(out)]
    return main([*argv, "--no-progress", *extra])


def _codes(table) -> np.ndarray:
    return table[[c for c in table if c.startswith("z_mean_")]].to_numpy()


def test_the_finetuned_model_is_saved_and_reproduces_the_tables_codes(tmp_path, files):
    base, image, labels = files
    out = tmp_path / "cells.parquet"
    assert _embed(files, out, "--finetune", "5") == 0
    model = tmp_path / "cells.finetuned.ckpt"
    tuned, hparams = load_model(model)  # a checkpoint like fit's
    plain, base_hparams = load_model(base)
    assert hparams == base_hparams
    changed = [
        not torch.equal(a, b)
        for a, b in zip(tuned.state_dict().values(), plain.state_dict().values())
    ]
    assert any(changed)
    table = read_cell_table(out)
    again = embed_file(model, image, labels, tmp_path / "again.parquet", progress=False)
    np.testing.assert_allclose(_codes(again), _codes(table), rtol=0, atol=1e-6)
    assert not np.allclose(
        _codes(table),
        _codes(embed_file(base, image, labels, tmp_path / "b.parquet", progress=False)),
    )
    from cellvae.inference.finetuned import read_finetuned_from

    record = read_finetuned_from(model)
    assert record["ckpt"] == os.path.abspath(base) and record["sha256"] == file_sha256(base)
    assert record["steps"] == 5 and record["labels"] == str(labels) and record["crops"] == 2
    assert record["neighbours"] == "masked"


def test_the_table_records_the_finetuned_model_as_its_checkpoint(tmp_path, files):
    out = tmp_path / "cells.parquet"
    assert _embed(files, out, "--finetune", "5") == 0
    inputs = read_provenance(out)["inputs"]
    assert inputs["ckpt"] == str(tmp_path / "cells.finetuned.ckpt")
    assert inputs["finetuned_from"] == os.path.abspath(files[0])
    assert inputs["labels"] == os.path.abspath(files[2])


def test_a_library_call_records_the_finetuned_model_too(tmp_path, files):
    base, image, labels = files
    out = tmp_path / "cells.parquet"
    embed_file(base, image, labels, out, progress=False, finetune_steps=3)
    inputs = read_provenance(out)["inputs"]
    assert inputs["ckpt"] == str(tmp_path / "cells.finetuned.ckpt")
    assert inputs["finetuned_from"] == os.path.abspath(base)


def test_without_finetune_nothing_extra_is_written_and_the_base_is_recorded(tmp_path, files):
    out = tmp_path / "cells.parquet"
    assert _embed(files, out) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "base.ckpt",
        "cells.parquet",
    ]
    inputs = read_provenance(out)["inputs"]
    assert inputs["ckpt"] == os.path.abspath(files[0]) and "finetuned_from" not in inputs


def test_an_existing_finetuned_model_is_refused_without_overwrite(tmp_path, files, capsys):
    out = tmp_path / "cells.parquet"
    model = tmp_path / "cells.finetuned.ckpt"
    model.write_text("old")
    assert _embed(files, out, "--finetune", "5") != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(model) in err and "--overwrite" in err
    assert not out.exists() and model.read_text() == "old"

    model.unlink()
    out.write_text("old table")
    assert _embed(files, out, "--finetune", "5") != 0
    assert not model.exists() and out.read_text() == "old table"

    model.write_text("old")
    assert _embed(files, out, "--finetune", "5", "--overwrite") == 0
    load_model(model)  # both replaced
    assert read_provenance(out)["inputs"]["ckpt"] == str(model)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "base.ckpt",
        "cells.finetuned.ckpt",
        "cells.parquet",
    ]


def test_nothing_is_left_when_writing_the_table_fails(tmp_path, files, monkeypatch):
    import cellvae.io.tables as tables

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tables, "write_cell_table", broken)
    base, image, labels = files
    with pytest.raises(OSError, match="disk full"):
        embed_file(
            base, image, labels, tmp_path / "cells.parquet", progress=False, finetune_steps=2
        )
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["base.ckpt"]


def test_classes_that_do_not_fit_leave_neither_table_nor_model(tmp_path, files, capsys):
    import pandas as pd

    classes = tmp_path / "c.csv"
    pd.DataFrame({"label": [9, 50], "class": ["a", "b"]}).to_csv(classes, index=False)
    assert (
        _embed(files, tmp_path / "cells.parquet", "--finetune", "2", "--classes", str(classes)) != 0
    )
    assert "labels 50" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["base.ckpt", "c.csv"]


def test_the_finetuned_model_finds_the_training_image_of_its_base(tmp_path, rng):
    """Decodings take the training image's units; a path recorded relative to the base's
    folders is made absolute in the copy, which lives elsewhere."""
    from cellvae.inference.units import training_data

    labels, image = two_cells(rng)
    (tmp_path / "train" / "data").mkdir(parents=True)
    img = write_test_image(tmp_path / "train" / "data" / "img.zarr", image, "yx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "yx")
    base = save_checkpoint(tmp_path / "train" / "base.ckpt", **TINY_HIER)
    saved = torch.load(base, weights_only=True)
    saved["datamodule_hyper_parameters"] = {"paths": ["data/img.zarr"], "channels": [0]}
    torch.save(saved, base)
    (tmp_path / "out").mkdir()
    embed_file(base, img, lab, tmp_path / "out" / "cells.parquet", progress=False, finetune_steps=2)
    found, data = training_data(tmp_path / "out" / "cells.finetuned.ckpt")
    assert found == img and data["channels"] == [0]


def test_sample_refuses_to_decode_a_finetuned_table_with_its_base(tmp_path, files, capsys):
    base = files[0]
    out, model = tmp_path / "cells.parquet", tmp_path / "cells.finetuned.ckpt"
    assert _embed(files, out, "--finetune", "2") == 0
    capsys.readouterr()
    interpolate = ["--interpolate", "3", "9", "--embeddings", str(out), "--steps", "3"]
    refused = tmp_path / "base.tif"
    assert main(["sample", "--ckpt", str(base), *interpolate, "-o", str(refused)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"decode them with --ckpt {model}" in err
    assert not refused.exists()
    assert main(["sample", "--ckpt", str(model), *interpolate, "-o", str(tmp_path / "ok.tif")]) == 0


def test_the_report_says_which_model_made_the_codes(tmp_path, files):
    import pandas as pd

    from cellvae.io.provenance import make_provenance, recording, write_parquet
    from cellvae.report import write_run_report

    assert _embed(files, tmp_path / "cells.parquet", "--finetune", "5") == 0
    text = write_run_report(tmp_path).read_text()
    assert (
        "Codes of the model fine-tuned 5 updates on these cells (`cells.finetuned.ckpt`, from "
        "`base.ckpt`); decode them with it." in text
    )
    assert "checkpoints" not in text  # one lineage, not "2 checkpoints"
    old = tmp_path / "old"
    old.mkdir()
    table = pd.read_parquet(tmp_path / "cells.parquet")
    with recording(make_provenance("embed", {"input": "i.zarr", "ckpt": str(files[0])})):
        write_parquet(table, old / "cells.parquet")  # as cellvae wrote it before saving models
    assert "and not saved (a table of an older cellvae)" in write_run_report(old).read_text()
