"""Rate-distortion: sweeping β trades KL (rate) against reconstruction error (distortion).

Small β gives an autoencoder that copies (low distortion, high rate); large β drives the rate
to zero and the reconstructions towards the average patch. Data: 16 × 16 patches of the
synthetic mitochondria; model: a small flat VAE with a fixed-σ Gaussian decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from cellvae.experiments._report import finish
from cellvae.experiments._train import evaluate, mitochondria_patches, small_vae, train

BETAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
FAST_BETAS = (0.1, 10.0)


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train one VAE per β and tabulate rate and distortion on held-out patches (nats/dim)."""
    betas, steps, n = (FAST_BETAS, 100, 128) if fast else (BETAS, 1500, 1024)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    rows = []
    for beta in betas:
        vae = train(
            small_vae(16, 16, seed=seed), patches.train, steps, beta, seed=seed, warmup=steps // 3
        )
        rows.append({"beta": beta, **evaluate(vae, patches.test)})
    rate = [r["rate"] for r in rows]
    dist = [r["distortion"] for r in rows]

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].plot(dist, rate, "o-")
    for r in rows:
        axes[0].annotate(f"β={r['beta']:g}", (r["distortion"], r["rate"]), fontsize=8)
    axes[0].set(
        xlabel="distortion (nats/dim)", ylabel="rate = KL (nats/dim)", title="rate-distortion"
    )
    axes[1].semilogx(betas, rate, "o-", label="rate")
    axes[1].semilogx(betas, [r["mse"] for r in rows], "s-", label="MSE of reconstruction")
    axes[1].set(xlabel="β", title="against β")
    axes[1].legend()
    numbers = {
        "rate_at_min_beta": rate[0],
        "rate_at_max_beta": rate[-1],
        "distortion_at_min_beta": dist[0],
        "distortion_at_max_beta": dist[-1],
    }
    holds = rate[-1] < rate[0] and dist[-1] > dist[0]
    expectation = "rate falls towards 0 and distortion rises as β grows from 0.1 to 10+"
    return finish(outdir, "rate-distortion", rows, fig, numbers, expectation, holds)
