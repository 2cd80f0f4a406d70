"""Fixtures of the experiment tests: one output folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    """An empty folder for an experiment's table and figure."""
    return tmp_path / "out"


def assert_outputs(result: dict, name: str) -> None:
    """The result dict names a non-empty table and a PNG figure for ``name``."""
    table, figure = Path(result["table"]), Path(result["figure"])
    assert result["name"] == name
    assert table.name in (f"{name}.csv", f"{name}.json") and table.stat().st_size > 0
    assert figure.name == f"{name}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
