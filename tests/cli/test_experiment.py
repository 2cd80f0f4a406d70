"""``cellvae experiment`` runs an experiment and writes the report."""

from __future__ import annotations

import json

import pytest

from cellvae.cli import experiment as verb
from cellvae.cli import main
from cellvae.experiments._report import EXPERIMENTS


def test_cli_names_match_the_registry():
    assert list(verb.NAMES) == list(EXPERIMENTS)


def test_unknown_experiment_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["experiment", "no-such-thing"])
    assert err.value.code == 2


@pytest.mark.slow
def test_prototype_fast_writes_table_figure_and_report(tmp_path, capsys):
    assert main(["experiment", "prototype", "-o", str(tmp_path), "--fast"]) == 0
    printed = capsys.readouterr().out
    assert "prototype:" in printed and "report.md" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"prototype"} and summary["prototype"]["seconds"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "## prototype" in report and "![prototype](prototype.png)" in report
    assert (tmp_path / "prototype.csv").exists() and (tmp_path / "prototype.png").exists()
