"""Prototype: the decoding of z = 0 is close to neither any training patch nor the data mean.

Distances (RMS, model units) of the prototype to its nearest training patch and to the
pixel-wise mean of the training patches, beside the same distances for random prior samples
and for held-out data patches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from cellvae.experiments._distances import nearest_rms, rms
from cellvae.experiments._report import finish
from cellvae.experiments._train import mitochondria_patches, small_vae, train


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train a β = 1 VAE and measure where its prototype and prior samples lie."""
    steps, n, n_samples = (100, 128, 32) if fast else (2000, 1024, 256)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    vae = train(
        small_vae(16, 16, seed=seed), patches.train, steps, 1.0, seed=seed, warmup=steps // 3
    )
    mean_patch = patches.train.mean(0, keepdim=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        proto = vae.likelihood.mean(vae.prototype_params((16, 16)))
        samples = vae.likelihood.mean(vae.sample_params(n_samples, (16, 16)))
    sets = {"prototype (z = 0)": proto, "prior samples": samples, "held-out data": patches.test}
    rows = []
    for label, x in sets.items():
        d_nn, d_mean = nearest_rms(x, patches.train), rms(x, mean_patch)
        rows.append(
            {
                "images": label,
                "n": len(x),
                "to_nearest_train_mean": float(d_nn.mean()),
                "to_nearest_train_std": float(d_nn.std()) if len(x) > 1 else 0.0,
                "to_data_mean_mean": float(d_mean.mean()),
                "to_data_mean_std": float(d_mean.std()) if len(x) > 1 else 0.0,
            }
        )
    by = {r["images"]: r for r in rows}

    fig, axes = plt.subplots(1, 5, figsize=(13, 3))
    shown = [
        ("prototype z=0", proto[0, 0]),
        ("pixel-wise mean", mean_patch[0, 0]),
        ("prior sample", samples[0, 0]),
        ("prior sample", samples[1, 0]),
    ]
    for ax, (title, img) in zip(axes, shown):
        ax.imshow(img.numpy(), cmap="magma", vmin=-1, vmax=1)
        ax.set(title=title, xticks=[], yticks=[])
    for i, (label, r) in enumerate(by.items()):
        axes[4].errorbar(
            r["to_nearest_train_mean"],
            r["to_data_mean_mean"],
            xerr=r["to_nearest_train_std"],
            yerr=r["to_data_mean_std"],
            fmt="o",
            label=label,
            color=f"C{i}",
        )
    axes[4].set(xlabel="RMS to nearest train patch", ylabel="RMS to data mean")
    axes[4].legend(fontsize=7)
    p, d = by["prototype (z = 0)"], by["held-out data"]
    numbers = {
        "prototype_to_nearest_train": p["to_nearest_train_mean"],
        "prototype_to_data_mean": p["to_data_mean_mean"],
        "samples_to_nearest_train": by["prior samples"]["to_nearest_train_mean"],
        "samples_to_data_mean": by["prior samples"]["to_data_mean_mean"],
        "heldout_to_nearest_train": d["to_nearest_train_mean"],
        "heldout_to_data_mean": d["to_data_mean_mean"],
    }
    holds = (
        p["to_nearest_train_mean"] > 0.5 * d["to_nearest_train_mean"]
        and p["to_data_mean_mean"] > 0.02
    )
    expectation = (
        "the prototype is neither a copy of a training patch (its nearest-patch distance "
        "is comparable to a held-out patch's) nor the pixel-wise mean (distance > 0.02)"
    )
    return finish(outdir, "prototype", rows, fig, numbers, expectation, holds)
