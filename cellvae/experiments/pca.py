"""PCA against a VAE of the same latent size on the real nuclei_2d sample.

Reconstruction error: RMS between held-out patches and their reconstruction (PCA projection;
VAE decoder mean at the posterior mean). Sample quality proxy (no FID for 16 × 16 grey
patches): ``precision`` = mean RMS from each sample to its nearest held-out patch, ``recall``
= mean RMS from each held-out patch to its nearest sample (lower is better for both). PCA
samples are Gaussian in principal-component space with the components' variances; VAE samples
are decoder means at ``z ~ N(0, I)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA

from cellvae.data.samples import nuclei_2d
from cellvae.experiments._distances import nearest_rms, rms
from cellvae.experiments._report import finish
from cellvae.experiments._train import random_patches, reconstructions, small_vae, train

LATENT_DIM = 8


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Fit PCA and a VAE with ``d = 8`` and compare reconstructions and samples."""
    steps, n = (100, 128) if fast else (2000, 2048)
    image = nuclei_2d().image
    train_img, test_img = image[:, :384], image[:, 384:]
    x_train = random_patches(train_img, 16, n, seed)
    x_test = random_patches(test_img, 16, n // 4, seed + 1)
    pca = PCA(LATENT_DIM, random_state=seed).fit(x_train.flatten(1).numpy())
    codes = pca.transform(x_test.flatten(1).numpy())
    pca_recon = torch.from_numpy(pca.inverse_transform(codes).astype(np.float32)).reshape(
        x_test.shape
    )
    rng = np.random.default_rng(seed)
    pc = rng.normal(size=(len(x_test), LATENT_DIM)) * np.sqrt(pca.explained_variance_)
    pca_samples = torch.from_numpy(pca.inverse_transform(pc).astype(np.float32)).reshape(
        x_test.shape
    )

    vae = train(
        small_vae(16, LATENT_DIM, seed=seed), x_train, steps, 1.0, seed=seed, warmup=steps // 3
    )
    vae_recon = reconstructions(vae, x_test)
    torch.manual_seed(seed)
    with torch.no_grad():
        vae_samples = vae.likelihood.mean(vae.sample_params(len(x_test), (16, 16)))
    rows = []
    for label, recon, samples in (("pca", pca_recon, pca_samples), ("vae", vae_recon, vae_samples)):
        rows.append(
            {
                "model": label,
                "latent_dim": LATENT_DIM,
                "recon_rms": float(rms(recon, x_test).mean()),
                "sample_precision_rms": float(nearest_rms(samples, x_test).mean()),
                "sample_recall_rms": float(nearest_rms(x_test, samples).mean()),
            }
        )
    by = {r["model"]: r for r in rows}

    fig, axes = plt.subplots(3, 6, figsize=(9, 5))
    for row, (title, imgs) in zip(
        axes, (("data", x_test), ("PCA sample", pca_samples), ("VAE sample", vae_samples))
    ):
        for ax, img in zip(row, imgs[:6]):
            ax.imshow(img[0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(title)
    numbers = {
        f"{m}_{k}": by[m][k]
        for m in by
        for k in ("recon_rms", "sample_precision_rms", "sample_recall_rms")
    }
    holds = (
        by["vae"]["recon_rms"] <= by["pca"]["recon_rms"]
        and by["vae"]["sample_precision_rms"] <= by["pca"]["sample_precision_rms"]
    )
    expectation = (
        "at the same d the VAE reconstructs no worse than PCA and its samples lie "
        "closer to real patches than PCA's Gaussian samples"
    )
    return finish(outdir, "pca", rows, fig, numbers, expectation, holds)
