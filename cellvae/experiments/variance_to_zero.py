"""Variance to zero: forcing the encoder's σ towards 0 makes the KL diverge like −log σ, and a
VAE with σ fixed tiny generates as badly as a plain autoencoder.

The encoder's mean is kept, its log-variance replaced by a constant ``log σ²`` for every
dimension (:class:`FixedSigma`). Per dimension ``KL = ½(μ² + σ² − 1) − log σ``, which grows
without bound as σ → 0. Sample quality proxy: the RMS distance of decoded prior samples to
their nearest held-out patch (lower is better), beside the same distance for held-out
patches to the training set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from cellvae.experiments._distances import nearest_rms
from cellvae.experiments._report import finish
from cellvae.experiments._train import evaluate, mitochondria_patches, small_vae, train
from cellvae.models.base import VAEOutput
from cellvae.models.flat import FlatVAE
from cellvae.models.latents import DiagonalGaussian

SIGMAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.001)
FAST_SIGMAS = (0.3, 0.01)
LATENT_DIM = 16


class FixedSigma(nn.Module):
    """A :class:`FlatVAE` whose posterior std is fixed at ``sigma`` in every dimension."""

    def __init__(self, vae: FlatVAE, sigma: float) -> None:
        super().__init__()
        self.vae = vae
        self.likelihood = vae.likelihood
        self.log_var = 2.0 * math.log(sigma)

    def posterior(self, x: Tensor) -> DiagonalGaussian:
        """``q(z|x) = N(μ(x), σ²)``, ``(B, D)``."""
        mean = self.vae.posterior(x).mean
        return DiagonalGaussian(mean, torch.full_like(mean, self.log_var))

    def forward(self, x: Tensor) -> VAEOutput:
        q = self.posterior(x)
        z = q.rsample()
        return VAEOutput(self.vae.decode(z), [q.kl_standard_normal()], [q], [z])

    def reconstruct_params(self, x: Tensor, sample: bool = False) -> Tensor:
        q = self.posterior(x)
        return self.vae.decode(q.rsample() if sample else q.mean)


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """KL, distortion and prior-sample distance for each fixed σ and for the learned σ."""
    sigmas, steps, n = (FAST_SIGMAS, 100, 128) if fast else (SIGMAS, 1500, 1024)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    reference = float(nearest_rms(patches.test, patches.train).mean())
    rows = []
    for sigma in (*sigmas, None):
        vae = small_vae(16, LATENT_DIM, seed=seed)
        model = vae if sigma is None else FixedSigma(vae, sigma)
        train(model, patches.train, steps, 1.0, seed=seed, warmup=steps // 3)
        stats = evaluate(model, patches.test)
        torch.manual_seed(seed)
        with torch.no_grad():
            samples = vae.likelihood.mean(vae.sample_params(len(patches.test), (16, 16)))
            code_std = float(vae.embed(patches.test)[0].std())
        rows.append(
            {
                "sigma": "learned" if sigma is None else sigma,
                "kl_per_image": stats["rate"] * 256,
                "mse": stats["mse"],
                "sample_to_data_rms": float(nearest_rms(samples, patches.test).mean()),
                "heldout_to_train_rms": reference,
                "posterior_mean_std": code_std,
            }
        )
    fixed = [r for r in rows if r["sigma"] != "learned"]
    s = np.array([r["sigma"] for r in fixed])
    kl = np.array([r["kl_per_image"] for r in fixed])
    slope = (
        float(np.polyfit(-np.log(s[s <= 0.03]), kl[s <= 0.03], 1)[0])
        if (s <= 0.03).sum() > 1
        else float("nan")
    )

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].semilogx(s, kl, "o-", label="measured")
    axes[0].semilogx(
        s,
        LATENT_DIM * (-np.log(s)) + kl[-1] - LATENT_DIM * (-np.log(s[-1])),
        "k:",
        label=f"slope −{LATENT_DIM} log σ",
    )
    axes[0].set(xlabel="encoder σ (fixed)", ylabel="KL per image (nats)", title="KL diverges")
    axes[0].invert_xaxis()
    axes[0].legend()
    axes[1].semilogx(s, [r["sample_to_data_rms"] for r in fixed], "o-", label="prior samples")
    axes[1].axhline(rows[-1]["sample_to_data_rms"], color="C1", ls="--", label="learned σ")
    axes[1].axhline(reference, color="k", ls=":", label="held-out data")
    axes[1].set(
        xlabel="encoder σ (fixed)", ylabel="RMS to nearest held-out patch", title="sample quality"
    )
    axes[1].invert_xaxis()
    axes[1].legend()
    numbers = {
        "kl_largest_sigma": fixed[0]["kl_per_image"],
        "kl_smallest_sigma": fixed[-1]["kl_per_image"],
        "kl_slope_per_unit_minus_log_sigma": slope,
        "expected_slope": LATENT_DIM,
        "sample_rms_smallest_sigma": fixed[-1]["sample_to_data_rms"],
        "sample_rms_learned_sigma": rows[-1]["sample_to_data_rms"],
    }
    holds = (
        fixed[-1]["kl_per_image"] > fixed[0]["kl_per_image"]
        and fixed[-1]["sample_to_data_rms"] > rows[-1]["sample_to_data_rms"]
    )
    expectation = (
        f"KL grows like −{LATENT_DIM}·log σ as σ → 0; prior samples of the tiny-σ "
        "model are further from the data than those of the learned-σ VAE"
    )
    return finish(outdir, "variance-to-zero", rows, fig, numbers, expectation, holds)
