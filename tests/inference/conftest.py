"""Fixtures for inference tests: a tiny checkpoint and a small image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.inference.helpers import save_checkpoint, write_test_image


@pytest.fixture
def ckpt2d(tmp_path) -> Path:
    """A flat 2D VAE, patch 16×16, downsampling 4."""
    return save_checkpoint(tmp_path / "flat2d.ckpt")


@pytest.fixture
def image2d(tmp_path, rng) -> Path:
    """A 40×52 uint8 image with smooth structure."""
    y, x = np.mgrid[:40, :52]
    data = (100 + 80 * np.sin(y / 5) * np.cos(x / 7) + rng.normal(0, 5, y.shape)).clip(0, 255)
    return write_test_image(tmp_path / "img.zarr", data.astype(np.uint8), "yx")
