"""The report finds outputs whatever their names, takes them as options, and warns on collapse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main
from cellvae.report import write_run_report


def _cells(active: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cells = pd.DataFrame({"label": range(1, 21), "pca_0": 0.0, "pca_1": 0.0})
    for i in range(3):
        cells[f"z_mean_{i}"] = rng.normal(0, 1 if active else 1e-3, 20)
    return cells


def _metrics(run: Path, active_units: float) -> None:
    log = run / "train" / "lightning_logs" / "version_0"
    log.mkdir(parents=True)
    pd.DataFrame(
        {"step": [10, 20], "val/bits_per_dim": [4.0, 3.5], "val/active_units": [3.0, active_units]}
    ).to_csv(log / "metrics.csv", index=False)


def test_collapse_is_said_at_the_top_of_the_report(tmp_path):
    _metrics(tmp_path, 0.0)
    _cells(active=False).to_parquet(tmp_path / "cells.parquet")
    text = write_run_report(tmp_path).read_text()
    head = text.split("## Training")[0]
    assert "Warning: posterior collapse: 0 active latent units" in head
    assert "Warning: posterior collapse: no latent unit varies across the 20 cells" in head
    assert "Active latent units across cells (variance of the mean > 0.01): 0 of 3." in text


def test_a_healthy_run_has_no_collapse_warning(tmp_path):
    _metrics(tmp_path, 3.0)
    _cells(active=True).to_parquet(tmp_path / "cells.parquet")
    text = write_run_report(tmp_path).read_text()
    assert "Warning" not in text and ": 3 of 3." in text


def test_outputs_are_found_by_their_provenance_whatever_their_names(tmp_path):
    from cellvae.io.provenance import make_provenance, recording, write_parquet

    with recording(make_provenance("embed", {"input": "i.zarr"})):
        write_parquet(_cells(active=True), tmp_path / "nuclei_embedding.parquet")
    text = write_run_report(tmp_path).read_text()
    assert "20 cells, 3 latent dimensions each (`nuclei_embedding.parquet`" in text


def test_outputs_can_be_given_as_options(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _cells(active=True).to_parquet(elsewhere / "table.parquet")
    summary = {
        "original": "o.zarr",
        "recon": "r.zarr",
        "blur_map": "b.zarr",
        "cutoff_cycles_per_px": 0.125,
        "global_hf_ratio": 0.5,
        "median_window_hf_ratio": None,
        "frc": {"resolution_1_7_px": None, "resolution_half_bit_px": None},
    }
    (elsewhere / "my_blur.json").write_text(json.dumps(summary))
    _metrics(elsewhere, 3.0)
    run = tmp_path / "run"
    run.mkdir()
    argv = ["report", str(run), "--cells", str(elsewhere / "table.parquet")]
    argv += ["--blur", str(elsewhere / "my_blur.json"), "--train", str(elsewhere / "train")]
    assert main(argv) == 0
    text = (run / "report.md").read_text()
    assert f"20 cells, 3 latent dimensions each (`{elsewhere / 'table.parquet'}`" in text
    assert "**0.500**" in text and "FRC 1/7 resolution: n/a px" in text
    assert "| val/bits_per_dim | 3.5 |" in text
    assert main(["report", str(run), "--samples", str(tmp_path / "none.tif")]) == 1
    assert "none.tif: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--blur", "--cells", "--samples"])
def test_missing_option_file_is_one_line(tmp_path, capsys, option):
    assert main(["report", str(tmp_path), option, str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such file" in err


def test_the_cells_section_counts_the_local_summary_and_maps_the_description(tmp_path):
    cells = _cells(active=True)
    for k in range(4):
        cells[f"local_{k}"] = float(k)
    cells["pca_0"], cells["pca_1"] = cells["z_mean_0"], cells["z_mean_1"]
    cells.to_parquet(tmp_path / "cells.parquet")
    text = write_run_report(tmp_path).read_text()
    assert "20 cells, 3 latent dimensions each plus 4 numbers summarising the local latents" in text


def test_recorded_absolute_paths_inside_a_relative_run_folder_are_shown_relative(
    tmp_path, monkeypatch
):
    from pathlib import Path

    from cellvae.report import _shown

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    recorded = tmp_path / "runs" / "demo" / "cells.finetuned.ckpt"  # provenance: absolute
    assert _shown(recorded, Path("runs/demo")) == "cells.finetuned.ckpt"
    assert _shown(Path("runs/demo/cells.parquet"), tmp_path / "runs" / "demo") == "cells.parquet"
    assert _shown(Path("/elsewhere/base.ckpt"), Path("runs/demo")) == "/elsewhere/base.ckpt"
