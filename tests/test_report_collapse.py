"""The report's collapse warnings: decided by information, with advice for the run they
look at (issue 19 item 4, issue 23 item 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cellvae.report import write_run_report


def _run(root: Path, informative: float, model: dict) -> None:
    log = root / "train" / "lightning_logs" / "version_0"
    log.mkdir(parents=True)
    pd.DataFrame(
        {
            "step": [100, 300],
            "val/bits_per_dim": [4.0, 3.9],
            "val/active_units": [3.0, 3.0],  # the variance cut says "fine"
            "val/informative_units": [2.0, informative],
        }
    ).to_csv(log / "metrics.csv", index=False)
    (log / "config.yaml").write_text(yaml.safe_dump({"model": model}))


PRESET = {"beta": 1.0, "beta_schedule": "linear", "beta_warmup_steps": 100, "free_bits": 0.0}


def test_a_run_with_a_warm_up_is_advised_what_it_did_not_do(tmp_path):
    _run(tmp_path, 0.0, PRESET)
    text = write_run_report(tmp_path).read_text()
    head = text.split("## Training")[0]
    assert "posterior collapse: 0 latent units carry information" in head
    assert "stopped at step 300" in head and "model.free_bits: 2" in head
    assert "warm up the KL" not in text


def test_a_run_without_a_warm_up_is_advised_one(tmp_path):
    _run(tmp_path, 0.0, PRESET | {"beta_schedule": "constant", "free_bits": 2.0})
    head = write_run_report(tmp_path).read_text().split("## Training")[0]
    assert "warm up the KL" in head and "model.free_bits: 4" in head


def test_information_decides_not_the_variance_cut(tmp_path):
    _run(tmp_path, 4.0, PRESET)
    assert "Warning" not in write_run_report(tmp_path).read_text()


def test_a_cell_table_whose_units_vary_but_carry_nothing_is_a_collapse(tmp_path):
    """Means that vary (variance 1, "active" by the old cut) inside posteriors 100 times wider
    carry no information about the cell; narrow posteriors make the same means informative."""
    rng = np.random.default_rng(0)
    cells = pd.DataFrame({"label": range(1, 41), "pca_0": 0.0, "pca_1": 0.0})
    for i in range(3):
        cells[f"z_mean_{i}"] = rng.normal(0, 1, 40)
        cells[f"z_logvar_{i}"] = np.log(100.0)
    cells.to_parquet(tmp_path / "cells.parquet")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": PRESET | {"global_dim": 3}}))
    text = write_run_report(tmp_path).read_text()
    assert ": 3 of 3." in text  # the old active-unit line is kept
    assert "Informative latent units (each carries > 0.1 nats about the cell): 0 of 3" in text
    assert "no latent unit varies across the 40 cells" in text.split("## Training")[0]
    assert "model.global_norm: batch" in text
    cells[[f"z_logvar_{i}" for i in range(3)]] = np.log(0.01)
    cells.to_parquet(tmp_path / "cells.parquet")
    text = write_run_report(tmp_path).read_text()
    assert "Warning" not in text.split("## Training")[0] and ": 3 of 3; together" in text
