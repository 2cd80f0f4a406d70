"""Shared test configuration: marker handling and small deterministic fixtures."""

from __future__ import annotations

import os

import numpy as np
import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA and ``gui`` tests without an X display.

    pytest-xvfb starts Xvfb (and sets ``DISPLAY``) before collection when Xvfb is installed;
    without any display Qt aborts the whole test process, so those tests are skipped instead.
    ``make test`` installs Xvfb when it runs as root.
    """
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_gui = pytest.mark.skip(reason="needs an X display: install Xvfb (make gui-deps)")
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "gui" in item.keywords and not has_display:
            item.add_marker(skip_gui)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every test sees the same numbers."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Keep torch on one thread: CI has two cores and runs tests in one process."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
