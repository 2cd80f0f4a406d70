"""Tiny checkpoints and images for inference and CLI tests (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path: Path, **overrides) -> Path:
    """Save an untrained tiny ``VAEModule`` the way Lightning does (hparams + state_dict)."""
    from cellvae.training.module import VAEModule

    torch.manual_seed(0)
    kw = dict(
        arch="flat",
        ndim=2,
        patch_size=16,
        widths=(4, 8),
        latent_dim=4,
        likelihood="gaussian",
        bits=8,
    )
    kw.update(overrides)
    module = VAEModule(**kw)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def two_cells(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """40×48 labels with cells 3 (5×5) and 9 (10×6), and a random uint8 image from ``rng``."""
    labels = np.zeros((40, 48), np.uint16)
    labels[5:10, 5:10], labels[20:30, 30:36] = 3, 9
    return labels, rng.integers(0, 255, labels.shape, dtype=np.uint8)


def write_test_image(path: Path, data: np.ndarray, axes: str) -> Path:
    """An OME-Zarr image with stored statistics, as ``cellvae ingest`` writes it."""
    from cellvae.io.omezarr import write_image
    from cellvae.io.stats import intensity_stats

    voxel = {a: 0.5 for a in axes if a in "zyx"}
    write_image(path, data, axes, voxel, stats=intensity_stats(data, axes), n_levels=1)
    return path


class _IdentityLikelihood(torch.nn.Module):
    def mean(self, params):
        return params

    def mode(self, params):
        return params


class IdentityVAE(torch.nn.Module):
    """Stand-in VAE whose reconstruction is its input and whose code is the crop's mean.

    ``embed`` returns ``(mean over voxels, logvar = -mean)`` per channel, so a test can tell
    which crop was embedded; ``decode_embedding``/``sample_params`` return constant images.
    """

    def __init__(self, ndim: int = 2, channels: int = 1, patch: tuple[int, ...] | None = None):
        super().__init__()
        self.ndim, self.in_channels, self.downsampling = ndim, channels, 1
        self.patch_shape = patch
        self.likelihood = _IdentityLikelihood()
        self.calls = 0
        self.register_buffer("dummy", torch.zeros(1))

    def reconstruct_params(self, x, sample=False):
        self.calls += 1
        return x

    def embed(self, x):
        mean = x.flatten(2).mean(-1)
        return mean, -mean

    def decode_embedding(self, mean, patch_shape):
        return mean[:, :1].reshape(-1, 1, *[1] * len(patch_shape)).expand(-1, 1, *patch_shape)

    def sample_params(self, n, patch_shape, temperature=1.0):
        return temperature * torch.ones(n, self.in_channels, *patch_shape)


def stand_in(monkeypatch, vae, hparams=None):
    """Make inference load ``vae`` whatever checkpoint path it is given.

    The checkpoint's content hash (which keys resumable reconstruction blocks) becomes the
    stand-in model's identity, since no checkpoint file exists.
    """
    import cellvae.inference.model as model
    import cellvae.inference.reconstruct as reconstruct

    monkeypatch.setattr(reconstruct, "file_sha256", lambda path: f"stand-in-{id(vae)}")

    hp = {"bits": 8, "patch_size": 16} | (hparams or {})
    monkeypatch.setattr(model, "load_vae", lambda path: (vae, hp), raising=False)
    import cellvae.training.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "load_vae", lambda path: (vae, hp))


def full_range_image(rng, shape) -> np.ndarray:
    """uint8 noise whose stored 0.1/99.9 percentiles are exactly 0 and 255 (exact levels)."""
    data = rng.integers(1, 255, shape, dtype=np.uint8)
    flat = data.reshape(-1)
    n = max(flat.size // 50, 1)
    flat[:n], flat[n : 2 * n] = 0, 255
    return data
