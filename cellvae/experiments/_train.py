"""A compact in-memory training loop for the experiments' small VAEs.

The experiments train dozens of tiny models on a few hundred 2D patches held in one tensor.
Lightning's Trainer and the streaming ``PatchDataset`` cost more per step than these models
do on two CPU cores, so this loop draws batches from the tensor directly. The loss is the
training layer's own :func:`cellvae.training.objective.elbo_terms`, so the objective is
exactly the one ``cellvae fit`` minimises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cellvae.data.normalize import Quantizer
from cellvae.data.synthetic import mitochondria
from cellvae.models import build_model
from cellvae.models.base import VAE
from cellvae.training.objective import elbo_terms


@dataclass
class Patches:
    """Train and test patches ``(N, 1, Y, X)`` on the level grid in [-1, 1]."""

    train: Tensor
    test: Tensor
    bits: int


def random_patches(image: np.ndarray, size: int, n: int, seed: int, bits: int = 8) -> Tensor:
    """``n`` random ``size × size`` crops of a 2D ``image``, quantised to ``(n, 1, size, size)``.

    Intensities go through :class:`~cellvae.data.normalize.Quantizer` with the image's 0.1 and
    99.9 percentiles, as the data layer does.
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(image, [0.1, 99.9])
    x = Quantizer(float(lo), float(hi), bits).quantize(image.astype(np.float32))
    ys = rng.integers(0, image.shape[0] - size + 1, n)
    xs = rng.integers(0, image.shape[1] - size + 1, n)
    crops = np.stack([x[y : y + size, c : c + size] for y, c in zip(ys, xs)])
    return torch.from_numpy(crops[:, None].astype(np.float32))


def mitochondria_patches(n_train: int, n_test: int, size: int = 16, seed: int = 0) -> Patches:
    """Patches of two synthetic mitochondria images (train and test from different images).

    The images are brighter than the generator's default (1000 photons at the peak) so that
    shot noise does not dominate the error of a small model.
    """
    images = [
        mitochondria((192, 192), seed=seed + k, n_tubules=40, photons=1000.0, read_noise=1.0).image
        for k in (0, 1)
    ]
    return Patches(
        random_patches(images[0], size, n_train, seed),
        random_patches(images[1], size, n_test, seed + 1),
        bits=8,
    )


def small_vae(
    size: int,
    latent_dim: int = 16,
    likelihood: str = "gaussian",
    arch: str = "flat",
    seed: int = 0,
    **kwargs,
) -> VAE:
    """A small 2D VAE for ``size × size`` patches, built by :func:`cellvae.models.build_model`.

    Defaults: 8-bit data, widths (16, 32), one residual block per scale; a Gaussian likelihood
    has fixed σ = 0.1, so its distortion is the MSE / (2 σ²) plus a constant and β alone sets
    the balance of rate and distortion.
    """
    torch.manual_seed(seed)
    options = {"bits": 8, "widths": (16, 32), "blocks_per_scale": 1}
    if likelihood == "gaussian":
        options["sigma_mode"] = "fixed"
    options.update(kwargs)
    return build_model(
        arch=arch,
        ndim=2,
        in_channels=1,
        likelihood=likelihood,
        patch_size=(size, size),
        latent_dim=latent_dim,
        **options,
    )


def train(
    vae: VAE,
    data: Tensor,
    steps: int,
    beta: float = 1.0,
    batch: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    warmup: int = 0,
) -> VAE:
    """Minimise the β-weighted negative ELBO on ``data`` ``(N, C, *S)`` with Adam.

    ``warmup`` steps ramp β linearly from 0 (KL annealing), which keeps small models from
    collapsing before the decoder has learnt anything. Returns ``vae`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 10)
    vae.train()
    for step in range(steps):
        x = data[torch.randint(len(data), (batch,), generator=gen)]
        b = beta * min(1.0, (step + 1) / warmup) if warmup else beta
        opt.zero_grad()
        terms = elbo_terms(vae, x, b)
        terms.loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 100.0)
        opt.step()
        sched.step()
    return vae.eval()


@torch.no_grad()
def evaluate(vae: VAE, data: Tensor, batch: int = 128) -> dict[str, float]:
    """Per-dimension ``rate``, ``distortion``, ``elbo`` and ``bits_per_dim`` on ``data``,
    plus ``mse`` of the reconstruction means (posterior means decoded), all averaged."""
    vae.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(data), batch):
        x = data[start : start + batch]
        stats = elbo_terms(vae, x, 1.0).per_dim(vae.likelihood)
        stats["mse"] = ((vae.likelihood.mean(vae.reconstruct_params(x)) - x) ** 2).mean()
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + float(value) * len(x)
    return {key: value / len(data) for key, value in totals.items()}


@torch.no_grad()
def reconstructions(vae: VAE, data: Tensor) -> Tensor:
    """Means of the likelihood at the posterior means, shaped like ``data``."""
    return vae.likelihood.mean(vae.reconstruct_params(data))
