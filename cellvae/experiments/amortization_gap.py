"""Amortization gap: a Gaussian q optimised per data point beats the encoder's q.

For every test patch, ``(μ, log σ²)`` start at the encoder's output and are optimised with
Adam on the ELBO, decoder frozen, until the ELBO stops improving. The ELBOs of both q's are
estimated with the same ``K`` noise draws (common random numbers), so their difference is
not hidden by Monte Carlo noise; IWAE with the same draws estimates ``log p(x)`` for both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from cellvae.experiments._report import finish
from cellvae.experiments._train import mitochondria_patches, small_vae, train
from cellvae.metrics.likelihood import iwae_bound
from cellvae.models.flat import FlatVAE
from cellvae.models.latents import DiagonalGaussian
from cellvae.training.objective import log_likelihood

_LOG_2PI = math.log(2.0 * math.pi)


def log_weights(vae: FlatVAE, x: Tensor, mean: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """Log-weights ``log p(x|z) + log p(z) − log q(z)``, ``(K, B)`` nats, at ``z = μ + σ·eps``.

    ``eps`` is ``(K, B, D)``; ``mean`` and ``logvar`` are ``(B, D)``.
    """
    z = mean + (0.5 * logvar).exp() * eps
    k, b, d = eps.shape
    params = vae.decode(z.reshape(k * b, d))
    log_px = log_likelihood(vae, params, x.repeat(k, *([1] * (x.ndim - 1)))).reshape(k, b)
    log_pz = DiagonalGaussian.standard_like(z).log_prob(z).sum(-1)
    log_qz = -0.5 * (_LOG_2PI + logvar + eps**2).sum(-1)
    return log_px + log_pz - log_qz


def optimise_local(
    vae: FlatVAE, x: Tensor, steps: int, samples: int = 8, lr: float = 1e-2, seed: int = 0
) -> tuple[Tensor, Tensor, list[float]]:
    """Per-point Gaussian ``(μ, log σ²)`` maximising the ELBO of ``x``; returns them and the
    batch-mean ELBO trace (nats per image), one value per step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mean0, logvar0 = vae.embed(x)
    mean, logvar = mean0.clone().requires_grad_(), logvar0.clone().requires_grad_()
    opt = torch.optim.Adam([mean, logvar], lr=lr)
    for p in vae.parameters():
        p.requires_grad_(False)
    trace = []
    for _ in range(steps):
        eps = torch.randn(samples, *mean.shape, generator=gen)
        elbo = log_weights(vae, x, mean, logvar, eps).mean(0)
        opt.zero_grad()
        (-elbo.sum()).backward()
        opt.step()
        trace.append(float(elbo.detach().mean()))
    for p in vae.parameters():
        p.requires_grad_(True)
    return mean.detach(), logvar.detach(), trace


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """ELBO_local − ELBO_amortised and IWAE log p(x) of both, per test patch (nats per image)."""
    steps, n, n_test, local_steps, k = (100, 128, 8, 60, 32) if fast else (2000, 1024, 64, 500, 256)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    vae = train(
        small_vae(16, 16, seed=seed), patches.train, steps, 1.0, seed=seed, warmup=steps // 3
    )
    x = patches.test[:n_test]
    mean_l, logvar_l, trace = optimise_local(vae, x, local_steps, seed=seed)
    eps = torch.randn(k, *mean_l.shape, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        mean_a, logvar_a = vae.embed(x)
        w_a = log_weights(vae, x, mean_a, logvar_a, eps)
        w_l = log_weights(vae, x, mean_l, logvar_l, eps)
    rows = [
        {
            "patch": i,
            "elbo_amortised": float(w_a[:, i].mean()),
            "elbo_local": float(w_l[:, i].mean()),
            "iwae_amortised": float(iwae_bound(w_a[:, i : i + 1])[0]),
            "iwae_local": float(iwae_bound(w_l[:, i : i + 1])[0]),
        }
        for i in range(len(x))
    ]
    for r in rows:
        r["gap"] = r["elbo_local"] - r["elbo_amortised"]
    gap = np.array([r["gap"] for r in rows])

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].plot(trace)
    axes[0].axhline(float(w_a.mean()), color="k", ls=":", label="amortised ELBO")
    axes[0].set(xlabel="local optimisation step", ylabel="ELBO (nats/image, batch mean)")
    axes[0].legend()
    axes[1].hist(gap, bins=20)
    axes[1].set(xlabel="ELBO_local − ELBO_amortised (nats/image)", ylabel="patches")
    numbers = {
        "gap_mean": float(gap.mean()),
        "gap_min": float(gap.min()),
        "elbo_amortised": float(w_a.mean()),
        "elbo_local": float(w_l.mean()),
        "iwae_amortised": float(np.mean([r["iwae_amortised"] for r in rows])),
        "iwae_local": float(np.mean([r["iwae_local"] for r in rows])),
        "iwae_samples": k,
    }
    holds = gap.mean() >= 0
    expectation = "ELBO_local − ELBO_amortised ≥ 0; both IWAE estimates ≥ their ELBOs"
    return finish(outdir, "amortization-gap", rows, fig, numbers, expectation, holds)
