"""Latent size: total KL at convergence grows far slower than linearly in the latent size d.

If every dimension carried the same KL, total KL would be ``d · KL(d_min) / d_min``; in
practice the extra dimensions stay inactive (KL ≈ 0) once the data's information is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from cellvae.experiments._report import finish
from cellvae.experiments._train import evaluate, mitochondria_patches, small_vae, train

SIZES = (2, 4, 8, 16, 32)
FAST_SIZES = (2, 32)


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train a β = 1 VAE per latent size and tabulate its KL per image (nats)."""
    sizes, steps, n = (FAST_SIZES, 100, 128) if fast else (SIZES, 1500, 1024)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    rows = []
    for d in sizes:
        vae = train(
            small_vae(16, d, seed=seed), patches.train, steps, 1.0, seed=seed, warmup=steps // 3
        )
        stats = evaluate(vae, patches.test)
        rows.append({"latent_dim": d, "kl_per_image": stats["rate"] * 256, "mse": stats["mse"]})
    per_dim = rows[0]["kl_per_image"] / sizes[0]
    for r in rows:
        r["linear_reference"] = per_dim * r["latent_dim"]

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(sizes, [r["kl_per_image"] for r in rows], "o-", label="measured")
    ax.plot(sizes, [r["linear_reference"] for r in rows], "k:", label="same KL in every dimension")
    ax.set(xscale="log", xlabel="latent size d", ylabel="total KL per image (nats)")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.legend()
    numbers = {
        f"kl_d{rows[0]['latent_dim']}": rows[0]["kl_per_image"],
        f"kl_d{rows[-1]['latent_dim']}": rows[-1]["kl_per_image"],
        f"linear_reference_d{rows[-1]['latent_dim']}": rows[-1]["linear_reference"],
    }
    holds = rows[-1]["kl_per_image"] < rows[-1]["linear_reference"]
    expectation = "total KL saturates: far below the linear reference at the largest d"
    return finish(outdir, "latent-size", rows, fig, numbers, expectation, holds)
