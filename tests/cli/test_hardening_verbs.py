"""Verb hardening: blur's placement and refusals, embed's labels and time, sample's axes,
checkpoint errors, help, fit's console, provenance of every output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# imported at collection, so Lightning's log handler binds to the session's stderr and not to
# the capsys stream of whichever test happens to import it first (closed after that test)
import lightning.pytorch  # noqa: F401
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from scipy import ndimage

from cellvae.cli import main
from cellvae.io.omezarr import open_image, write_image
from tests.inference.helpers import save_checkpoint, two_cells, write_test_image

ROOT = Path(__file__).resolve().parents[2]


def _strict_json(path: Path) -> dict:
    """Parse as strict JSON: bare NaN / Infinity are errors, as in every other JSON reader."""

    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _one_line(capsys, code: int, match: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and match in err, err
    return err


def _flat_fit_argv(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    """``cellvae fit`` arguments for a flat model on a 96² noise image, plus ``extra``."""
    image = write_test_image(
        tmp_path / "i.zarr",
        np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8),
        "yx",
    )
    return [
        "fit",
        f"--data.paths=[{image}]",
        "--data.patch_size=[16, 16]",
        "--model.arch=flat",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


# --- blur -----------------------------------------------------------------------------------


def _blur(tmp_path, original, recon, *extra):
    argv = ["blur", str(original), str(recon), "-o", str(tmp_path / "b.zarr")]
    return main([*argv, "--summary", str(tmp_path / "b.json"), "--window", "16", *extra])


def test_blur_map_overlays_the_image_with_scale_and_translation(tmp_path, capsys):
    """Only pixels [44, 60)² lost detail: the map's minimum, placed by its NGFF transform,
    lies at their physical centre (index 51.5 x 0.5 µm), in µm."""
    from cellvae.io.provenance import read_provenance

    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.normal(size=(128, 128)), 0.7) * 100
    original = (1000 + texture + rng.normal(0, 2, (128, 128))).astype(np.float32)
    recon = original.copy()
    recon[44:60, 44:60] = 1000  # structure there is lost (the map shows no-signal for noise)
    voxel = {"y": 0.5, "x": 0.5}
    write_image(tmp_path / "o.zarr", original, "yx", voxel_size=voxel, units={"y": "nm", "x": "nm"})
    write_image(tmp_path / "r.zarr", recon, "yx", voxel_size=voxel)
    assert _blur(tmp_path, tmp_path / "o.zarr", tmp_path / "r.zarr", "--stride", "8") == 0
    bmap = open_image(tmp_path / "b.zarr")
    ratio = np.asarray(bmap.array)
    g = np.unravel_index(np.argmin(ratio), ratio.shape)
    where = [g[i] * bmap.voxel_size[a] + bmap.translation[a] for i, a in enumerate("yx")]
    np.testing.assert_allclose(where, [51.5 * 0.5, 51.5 * 0.5])
    assert bmap.units == {"y": "nanometer", "x": "nanometer"}
    summary = _strict_json(tmp_path / "b.json")
    assert summary["map_translation"] == {"y": 1.75, "x": 1.75}
    assert summary["provenance"]["inputs"] == {
        "original": str(tmp_path / "o.zarr"),
        "reconstruction": str(tmp_path / "r.zarr"),
    }
    assert read_provenance(tmp_path / "b.zarr")["verb"] == "blur"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda a: np.full_like(a, np.nan), "all values are NaN"),
        (lambda a: np.full_like(a, 7.0), "constant image"),
        (lambda a: a > a.mean(), "a bool mask, not an image"),
        (lambda a: a.astype(np.complex64), "unsupported data type complex64"),
    ],
    ids=["all-nan", "constant", "bool", "complex"],
)
def test_blur_refuses_originals_it_cannot_compare(tmp_path, capsys, make, match):
    rng = np.random.default_rng(0)
    recon = rng.normal(size=(64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "o.tif", make(recon))
    tifffile.imwrite(tmp_path / "r.tif", recon)
    _one_line(capsys, _blur(tmp_path, tmp_path / "o.tif", tmp_path / "r.tif"), match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "r.tif"]


def test_blur_summary_is_valid_json_when_some_numbers_are_undefined(tmp_path):
    """An original with a NaN stripe still gives a summary, with null where NaN would be."""
    rng = np.random.default_rng(0)
    original = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 0.7).astype(np.float32)
    original[:, 30] = np.nan
    tifffile.imwrite(tmp_path / "o.tif", original)
    tifffile.imwrite(tmp_path / "r.tif", np.nan_to_num(original))
    assert _blur(tmp_path, tmp_path / "o.tif", tmp_path / "r.tif") == 0
    summary = _strict_json(tmp_path / "b.json")
    assert summary["frc"]["resolution_1_7_px"] is None or summary["frc"]["resolution_1_7_px"] > 0


def test_undefined_numbers_become_null_not_bare_nan():
    from cellvae.cli.blur import finite_json

    summary = {"ratio": float("nan"), "frc": {"curve": [1.0, float("inf")]}, "n": 3, "s": "x"}
    text = json.dumps(finite_json(summary), allow_nan=False)
    assert json.loads(text) == {"ratio": None, "frc": {"curve": [1.0, None]}, "n": 3, "s": "x"}


# --- embed ----------------------------------------------------------------------------------


@pytest.fixture
def embed_files(tmp_path):
    labels, image = two_cells(np.random.default_rng(0))
    return (
        save_checkpoint(tmp_path / "m.ckpt"),
        write_test_image(tmp_path / "i.zarr", image, "yx"),
        labels,
    )


def _embed(tmp_path, ckpt, image, labels, *extra):
    out = tmp_path / "cells.parquet"
    argv = ["embed", str(image), "--ckpt", str(ckpt), "--labels", str(labels), "-o", str(out)]
    return main([*argv, "--no-progress", *extra]), out


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: np.where(a > 0, a, np.nan), "NaN"),
        (lambda a: a + 0.5, "whole numbers"),
        (lambda a: np.where(a == 9, -2, a).astype(np.int16), "negative label id -2"),
        (lambda a: a > 0, "bool mask"),
    ],
    ids=["nan-background", "half-integers", "negative", "bool"],
)
def test_embed_refuses_labels_that_are_not_cell_ids(tmp_path, capsys, embed_files, change, match):
    ckpt, image, labels = embed_files
    tifffile.imwrite(
        tmp_path / "bad.tif",
        change(labels.astype(np.float32)) if "bool" not in match else change(labels),
    )
    code, out = _embed(tmp_path, ckpt, image, tmp_path / "bad.tif")
    _one_line(capsys, code, match)
    assert not out.exists()


def test_embed_accepts_float_labels_holding_whole_ids(tmp_path, embed_files):
    from cellvae.io.provenance import read_provenance

    ckpt, image, labels = embed_files
    tifffile.imwrite(tmp_path / "f.tif", labels.astype(np.float32))
    code, out = _embed(tmp_path, ckpt, image, tmp_path / "f.tif")
    assert code == 0
    table = pd.read_parquet(out)
    assert table["label"].tolist() == [3, 9] and table["label"].dtype == np.int64
    record = read_provenance(out)
    assert record["verb"] == "embed"
    assert record["inputs"] == {
        "input": str(image),
        "labels": str(tmp_path / "f.tif"),
        "ckpt": str(ckpt),
    }


def test_embed_axes_names_a_label_stack_without_metadata(tmp_path, embed_files, capsys):
    ckpt, image, labels = embed_files
    tifffile.imwrite(tmp_path / "q.tif", labels[None], metadata={"axes": "QYX"})
    code, _ = _embed(tmp_path, ckpt, image, tmp_path / "q.tif")
    _one_line(capsys, code, "--axes")
    code, out = _embed(tmp_path, ckpt, image, tmp_path / "q.tif", "--axes", "TYX")
    assert code == 0 and pd.read_parquet(out)["label"].tolist() == [3, 9]


def test_embed_one_or_all_time_points_of_a_time_lapse(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.zeros((3, 40, 48), np.uint16)
    labels[0, 5:10, 5:10] = 1
    labels[1, 5:10, 5:10], labels[1, 20:30, 30:36] = 1, 2
    labels[2, 20:30, 30:36] = 3
    image = write_test_image(
        tmp_path / "t.zarr", rng.integers(0, 255, labels.shape, dtype=np.uint8), "tyx"
    )
    lab = write_test_image(tmp_path / "l.zarr", labels, "tyx")
    ckpt = save_checkpoint(tmp_path / "m.ckpt")

    code, out = _embed(tmp_path, ckpt, image, lab)
    _one_line(capsys, code, "--t N")
    code, out = _embed(tmp_path, ckpt, image, lab, "--t", "1")
    assert code == 0
    table = pd.read_parquet(out)
    assert table["label"].tolist() == [1, 2] and table["t"].tolist() == [1, 1]
    code, out = _embed(tmp_path, ckpt, image, lab, "--t", "all", "--overwrite")
    assert code == 0
    table = pd.read_parquet(out)
    assert list(zip(table["t"], table["label"])) == [(0, 1), (1, 1), (1, 2), (2, 3)]
    code, _ = _embed(tmp_path, ckpt, image, lab, "--t", "5", "--overwrite")
    _one_line(capsys, code, "--t: 5 out of range")


# --- sample, checkpoints --------------------------------------------------------------------


def test_sample_tiff_carries_its_axes_and_provenance(tmp_path):
    from cellvae.io.provenance import read_provenance

    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    out = tmp_path / "s.tif"
    assert main(["sample", "--ckpt", str(ckpt), "-n", "3", "-o", str(out)]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (3, 16, 16)
    record = read_provenance(out)
    assert record["verb"] == "sample" and record["inputs"] == {"ckpt": str(ckpt)}
    assert record["command"][:2] == ["cellvae", "sample"]


class _NotWeights:
    pass


@pytest.mark.parametrize("verb", ["sample", "fit"])
def test_a_non_checkpoint_is_refused_without_advice_to_disable_weights_only(tmp_path, capsys, verb):
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "thing": _NotWeights()}, bad)
    if verb == "sample":
        argv = ["sample", "--ckpt", str(bad), "-o", str(tmp_path / "s.tif")]
    else:
        argv = _flat_fit_argv(tmp_path, tmp_path, f"--ckpt_path={bad}")
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and f"{bad}: not a cellvae checkpoint" in err, err
    assert "weights_only" not in err and "Traceback" not in err


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["validate", "test"])
def test_validate_and_test_help_name_their_own_verb(verb, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main([verb, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: cellvae {verb} [-h] [--preset NAME | -c CONFIG.yaml]")
    assert "fit" not in text.splitlines()[0]
    assert "Customize every aspect of training" not in text

    import cellvae.cli.lightning as lightning

    monkeypatch.setattr(lightning, "_cli_class", lambda *a: pytest.fail("help was rebuilt"))
    assert main([verb, "--help"]) == 0
    assert capsys.readouterr().out == text  # the second time comes from the cache


def test_fit_help_is_fast_once_cached(tmp_path):
    """A fresh ``cellvae fit --help`` with a warm cache imports neither torch nor lightning."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path))
    code = "from cellvae.cli import main; import sys; main(sys.argv[1:]); "
    check = code + "assert 'torch' not in sys.modules and 'lightning' not in sys.modules"
    for script in (code, check):
        done = subprocess.run(
            [sys.executable, "-c", script, "fit", "--help"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: cellvae fit")


# --- fit's console --------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_off_a_terminal_prints_progress_lines_and_the_checkpoint(tmp_path):
    argv = _flat_fit_argv(
        tmp_path,
        tmp_path / "run",
        "--data.batch_size=2",
        "--data.patches_per_epoch=4",
        "--model.widths=[4, 8]",
        "--model.latent_dim=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=4",
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "cellvae", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out, everything = done.stdout, done.stdout + done.stderr
    last = tmp_path / "run" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert f"checkpoint: {last.relative_to(tmp_path)}" in out or f"checkpoint: {last}" in out
    assert last.is_file()
    assert "step 4/4" in out  # a progress line, readable in a log file
    for noise in ("/-2", "FLOPs", "Tip:", "tensorboardX", "\r"):
        assert noise not in everything, noise
    assert (last.parents[1] / "metrics.csv").is_file()


def test_epoch_without_a_limit_reads_epoch_n():
    from types import SimpleNamespace

    pytest.importorskip("rich", reason="needs rich (the dev extra) for Lightning's rich bar")

    from cellvae.training.callbacks import _rich_bar

    bar = _rich_bar()
    bar._trainer = SimpleNamespace(max_epochs=-1)
    assert bar._get_train_description(0).strip() == "Epoch 0"
    bar._trainer = SimpleNamespace(max_epochs=5)
    assert bar._get_train_description(2).strip() == "Epoch 2/4"


# --- a 2D model on a volume ----------------------------------------------------------------


def test_a_2d_model_on_a_volume_is_said_once():
    import warnings

    from cellvae.inference.model import warn_planewise

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_planewise(2, "zyx", (12, 64, 64), "v.zarr")
        assert not warn_planewise(3, "zyx", (12, 64, 64), "v.zarr")
        assert not warn_planewise(2, "tyx", (12, 64, 64), "t.zarr")
    assert [str(w.message) for w in caught] == [
        "v.zarr: a 2D model on a volume of 12 planes: it runs plane by plane and sees "
        "nothing along z"
    ]


def test_reconstruct_says_once_that_a_2d_model_runs_plane_by_plane(tmp_path, capsys):
    rng = np.random.default_rng(0)
    volume = write_test_image(
        tmp_path / "v.zarr", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8), "zyx"
    )
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    argv = ["reconstruct", str(volume), "--ckpt", str(ckpt), "-o", str(tmp_path / "r.zarr")]
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("a 2D model on a volume of 3 planes") == 1, err


def test_reconstruction_records_its_provenance(tmp_path):
    from cellvae.io.provenance import read_provenance

    rng = np.random.default_rng(0)
    image = write_test_image(
        tmp_path / "i.zarr", rng.integers(0, 255, (32, 32), dtype=np.uint8), "yx"
    )
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    out = tmp_path / "r.zarr"
    assert (
        main(["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out), "--no-progress"]) == 0
    )
    record = read_provenance(out)
    assert record["verb"] == "reconstruct"
    assert record["inputs"] == {"input": str(image), "ckpt": str(ckpt)}


def test_reconstruction_keeps_the_channel_names_of_its_input(tmp_path):
    from cellvae.io.stats import intensity_stats

    data = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    image = write_image(
        tmp_path / "i.zarr",
        data,
        "cyx",
        stats=intensity_stats(data, "cyx"),
        channel_names=["DAPI", "GFP"],
    )
    ckpt = save_checkpoint(tmp_path / "m.ckpt", in_channels=2)
    out = tmp_path / "r.zarr"
    assert (
        main(["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out), "--no-progress"]) == 0
    )
    assert open_image(image).channel_names == ["DAPI", "GFP"]
    assert open_image(out).channel_names == ["DAPI", "GFP"]


def test_a_damaged_file_is_not_a_readable_checkpoint_and_gets_no_weights_only_advice(tmp_path):
    from cellvae.errors import CellvaeError
    from cellvae.training.checkpoint import check_checkpoint

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CellvaeError, match="not a readable checkpoint") as caught:
        check_checkpoint(bad)
    assert "weights_only" not in str(caught.value)
