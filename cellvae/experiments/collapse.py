"""Posterior collapse: at large β the latents switch off and every input decodes alike.

For a flat VAE: active units (Burda et al. 2016: ``Var_x E_q[z_d] > 0.01``), KL per latent
dimension and the across-input variance of the reconstructions, against β. For the
hierarchical VAE: KL per latent group against β.

The decoder is a Gaussian with fixed σ = 0.1, so one nat of KL trades against
``2σ² = 0.02`` of summed squared error: the sweep reaches β = 1000 to cross into collapse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from cellvae.experiments._report import finish
from cellvae.experiments._train import mitochondria_patches, reconstructions, small_vae, train
from cellvae.metrics.likelihood import active_units
from cellvae.models.base import VAE

BETAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
FAST_BETAS = (0.1, 1000.0)
LATENT_DIM = 16


@torch.no_grad()
def group_kl(vae: VAE, data: torch.Tensor) -> list[float]:
    """Mean KL per image of each latent group, nats, on ``data``."""
    out = vae(data)
    return [float(k.flatten(1).sum(1).mean()) for k in out.kl]


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Active units, KL per dimension and reconstruction spread (flat) and KL per group
    (hierarchical) against β."""
    betas, steps, n = (FAST_BETAS, 100, 128) if fast else (BETAS, 1500, 1024)
    patches = mitochondria_patches(n, n // 4, seed=seed)
    data_var = float(patches.test.var(0).mean())
    rows = []
    for beta in betas:
        flat = train(
            small_vae(16, LATENT_DIM, seed=seed),
            patches.train,
            steps,
            beta,
            seed=seed,
            warmup=steps // 3,
        )
        with torch.no_grad():
            mean, _ = flat.embed(patches.test)
        recon = reconstructions(flat, patches.test)
        hier = train(
            small_vae(16, arch="hierarchical", latent_channels=4, seed=seed),
            patches.train,
            steps,
            beta,
            seed=seed,
            warmup=steps // 3,
        )
        kls = group_kl(hier, patches.test)
        rows.append(
            {
                "beta": beta,
                "active_units": active_units(mean),
                "kl_per_latent_dim": group_kl(flat, patches.test)[0] / LATENT_DIM,
                "recon_across_input_var": float(recon.var(0).mean()),
                "data_across_input_var": data_var,
                **{f"hier_kl_{name}": k for name, k in zip(hier.group_names, kls)},
            }
        )
    groups = [k for k in rows[0] if k.startswith("hier_kl_")]

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].semilogx(betas, [r["active_units"] for r in rows], "o-")
    axes[0].set(xlabel="β", ylabel=f"active units (of {LATENT_DIM})", title="flat VAE")
    axes[1].semilogx(
        betas, [r["recon_across_input_var"] for r in rows], "o-", label="reconstructions"
    )
    axes[1].axhline(data_var, color="k", ls=":", label="data")
    axes[1].set(xlabel="β", ylabel="variance across inputs", title="flat VAE")
    axes[1].legend()
    for g in groups:
        axes[2].loglog(betas, [max(r[g], 1e-4) for r in rows], "o-", label=g[len("hier_kl_") :])
    axes[2].set(xlabel="β", ylabel="KL per image (nats)", title="hierarchical VAE, per group")
    axes[2].legend()
    first, last = rows[0], rows[-1]
    numbers = {
        "active_units_min_beta": first["active_units"],
        "active_units_max_beta": last["active_units"],
        "recon_var_min_beta": first["recon_across_input_var"],
        "recon_var_max_beta": last["recon_across_input_var"],
        "data_var": data_var,
    }
    holds = (
        last["active_units"] < first["active_units"]
        and last["recon_across_input_var"] < first["recon_across_input_var"]
    )
    expectation = (
        "active units fall towards 0 and reconstructions lose their across-input "
        "variance as β grows; the hierarchical groups' KL falls too"
    )
    return finish(outdir, "collapse", rows, fig, numbers, expectation, holds)
