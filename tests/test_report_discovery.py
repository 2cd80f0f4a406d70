"""``cellvae report`` and ``cellvae view`` find results the same way and say what they found.

Pinned here: which output is quoted when several of a kind exist (the newest), that a folder
of several results is not mixed into one report, and the active-unit count of a cells table
just below and just above the threshold.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main
from cellvae.discover import find_results
from cellvae.errors import CellvaeError
from cellvae.io.provenance import make_provenance, recording, write_parquet
from cellvae.report import ACTIVE_UNIT_VARIANCE, write_run_report


def _table(n_cells: int, variances: list[float]) -> pd.DataFrame:
    """``n_cells`` cells whose ``z_mean_i`` has sample variance exactly ``variances[i]``."""
    cells = pd.DataFrame({"label": np.arange(1, n_cells + 1), "pca_0": 0.0, "pca_1": 0.0})
    sign = np.where(np.arange(n_cells) % 2 == 0, 1.0, -1.0)  # mean 0
    for i, v in enumerate(variances):
        cells[f"z_mean_{i}"] = sign * np.sqrt(v * (n_cells - 1) / n_cells)
    return cells


def _embed_output(path: Path, table: pd.DataFrame, ckpt: str = "model.ckpt", when=None) -> Path:
    with recording(make_provenance("embed", {"input": "i.zarr", "ckpt": ckpt})):
        write_parquet(table, path)
    if when is not None:
        os.utime(path, (when, when))
    return path


def test_the_newest_cells_table_is_quoted_and_the_other_listed(tmp_path, capsys):
    _embed_output(tmp_path / "first.parquet", _table(10, [1.0]), when=1e9)
    _embed_output(tmp_path / "second.parquet", _table(30, [1.0]), when=2e9)
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "30 cells, 1 latent dimensions each (`second.parquet`" in text
    assert "cells table: second.parquet (the newest of 2; also first.parquet)" in text
    out = capsys.readouterr().out
    assert f"found in {tmp_path}: cells table: second.parquet (the newest of 2" in out
    os.utime(tmp_path / "first.parquet", (3e9, 3e9))
    text = write_run_report(tmp_path).read_text()
    assert "10 cells, 1 latent dimensions each (`first.parquet`" in text


def test_view_and_report_choose_the_same_outputs(tmp_path):
    from cellvae.napari.results import read_results

    _embed_output(tmp_path / "a.parquet", _table(4, [1.0]), when=2e9)
    _embed_output(tmp_path / "b.parquet", _table(5, [1.0]), when=1e9)
    (tmp_path / "report.md").write_text("# old\n")
    (found,) = find_results(tmp_path)
    assert read_results(tmp_path).files["cells"] == found.get("cells") == tmp_path / "a.parquet"


def test_outputs_of_different_checkpoints_are_named(tmp_path):
    _embed_output(tmp_path / "cells.parquet", _table(4, [1.0]), ckpt="a.ckpt")
    with recording(make_provenance("sample", {"ckpt": "b.ckpt"})):
        import tifffile

        from cellvae.io.provenance import tiff_metadata

        tifffile.imwrite(
            tmp_path / "samples.tif", np.zeros((2, 8, 8), np.float32), metadata=tiff_metadata()
        )
    (found,) = find_results(tmp_path)
    assert found.listing(choices_only=True) == [
        f"these outputs come from 2 checkpoints: {os.path.abspath('a.ckpt')}, "
        f"{os.path.abspath('b.ckpt')}"
    ]


def test_a_table_of_a_model_finetuned_from_the_checkpoint_is_not_another_checkpoint(tmp_path):
    inputs = {"input": "i.zarr", "ckpt": "cells.finetuned.ckpt", "finetuned_from": "a.ckpt"}
    with recording(make_provenance("embed", inputs)):
        write_parquet(_table(4, [1.0]), tmp_path / "cells.parquet")
    with recording(make_provenance("sample", {"ckpt": "a.ckpt"})):
        import tifffile

        from cellvae.io.provenance import tiff_metadata

        tifffile.imwrite(
            tmp_path / "samples.tif", np.zeros((2, 8, 8), np.float32), metadata=tiff_metadata()
        )
    (found,) = find_results(tmp_path)
    assert found.checkpoints() == [os.path.abspath("a.ckpt")]
    assert found.listing(choices_only=True) == []


def test_a_folder_of_several_results_is_listed_not_mixed(tmp_path, capsys):
    for image in ("nuclei", "tubules"):
        run = tmp_path / image / "preset"
        run.mkdir(parents=True)
        _embed_output(run / "cells.parquet", _table(6, [1.0]))
    found = find_results(tmp_path)
    assert [f.folder for f in found] == [tmp_path / "nuclei/preset", tmp_path / "tubules/preset"]
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"2 results folders ({tmp_path / 'nuclei/preset'}, {tmp_path / 'tubules/preset'})" in err
    assert not (tmp_path / "report.md").exists()
    # one results folder below: reported in place
    (tmp_path / "tubules").rename(tmp_path.parent / f"{tmp_path.name}_tubules")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "nuclei" / "preset" / "report.md").exists()


@pytest.mark.parametrize(
    ("variances", "active"),
    [
        ([0.99 * ACTIVE_UNIT_VARIANCE, 0.99 * ACTIVE_UNIT_VARIANCE], 0),
        ([0.99 * ACTIVE_UNIT_VARIANCE, 1.01 * ACTIVE_UNIT_VARIANCE], 1),
        ([1.01 * ACTIVE_UNIT_VARIANCE, 1.01 * ACTIVE_UNIT_VARIANCE], 2),
    ],
)
def test_active_units_just_below_and_above_the_threshold(tmp_path, variances, active):
    assert ACTIVE_UNIT_VARIANCE == 0.01
    _embed_output(tmp_path / "cells.parquet", _table(20, variances))
    text = write_run_report(tmp_path).read_text()
    assert f"(variance of the mean > 0.01): {active} of 2." in text
    collapse = "Warning: posterior collapse: no latent unit varies across the 20 cells"
    assert (collapse in text) == (active == 0)


def test_a_missing_run_folder_is_one_line(tmp_path):
    with pytest.raises(CellvaeError, match="run folder does not exist"):
        write_run_report(tmp_path / "nope")
