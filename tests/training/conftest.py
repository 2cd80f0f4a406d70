"""Tiny models and in-memory batches for the training tests."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

TINY = {
    "arch": "hierarchical",
    "likelihood": "dlogistic",
    "patch_size": 16,
    "widths": [4, 8],
    "latent_channels": 2,
    "latent_dim": 4,
    "bits": 8,
    "iwae_samples": 2,
    "lr_warmup_steps": 1,
    "grid_images": 0,
}


def level_images(n: int, size: int = 16, bits: int = 8, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` random images on the ``2**bits`` level grid in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    top = 2**bits - 1
    return torch.randint(0, top + 1, (n, 1, size, size), generator=gen).float() * (2 / top) - 1


@pytest.fixture
def tiny() -> dict:
    """Constructor arguments of a very small hierarchical VAEModule."""
    return dict(TINY)


@pytest.fixture
def loader() -> DataLoader:
    """Eight batches of four 16×16 images."""
    return DataLoader(level_images(32), batch_size=4)


def make_trainer(root, **kwargs) -> L.Trainer:
    """A quiet CPU Trainer writing under ``root``."""
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": str(root),
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }
    defaults.update(kwargs)
    return L.Trainer(**defaults)
