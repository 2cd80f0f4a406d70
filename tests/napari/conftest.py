"""Fixtures for the napari plugin tests: one contract-following results folder per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.napari.helpers import write_results


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory) -> Path:
    """``runs/img/preset`` with every result file, its inputs under ``inputs/``."""
    return write_results(tmp_path_factory.mktemp("results"), np.random.default_rng(7))
