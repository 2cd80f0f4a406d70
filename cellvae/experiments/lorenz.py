"""Lorenz: a VAE with decoder noise fills space, a GAN's deterministic generator need not.

The Lorenz attractor (σ = 10, ρ = 28, β = 8/3) has correlation dimension 2.05 ± 0.01
(Grassberger & Procaccia 1983). We estimate it from a trajectory, then train a small MLP VAE
with a Gaussian decoder and a small GAN with a deterministic generator on the same normalised
points, and estimate the dimension of their samples over the same range of r. The VAE's
samples include the decoder noise ``μ(z) + σ ε``, a full-rank 3-D Gaussian around every point,
so at scales comparable to σ they look 3-dimensional; the GAN's samples are the image of a
smooth map and can hug the attractor.

The conv VAEs of ``cellvae.models`` do not apply to 3-D points, so the two small networks live
here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn

from cellvae.experiments._report import finish
from cellvae.metrics.dimension import correlation_dimension

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
#: range of r (in units of the per-axis standard deviation) over which slopes are fitted
R_RANGE = (0.1, 0.6)
#: a range below the VAE's decoder σ (≈ 0.1-0.2), where its noise is resolved
R_SMALL = (0.02, 0.08)
LITERATURE = 2.05
#: Theiler window for the trajectory, in samples (0.5 time units at dt = 0.1)
THEILER = 5


def lorenz_trajectory(
    n: int, dt: float = 0.1, transient: float = 50.0, seed: int = 0
) -> np.ndarray:
    """``n`` points of a Lorenz trajectory sampled every ``dt``, after ``transient`` time units.

    Returns an array ``(n, 3)`` in the system's own units.
    """

    def field(_t: float, s: np.ndarray) -> list[float]:
        x, y, z = s
        return [SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z]

    start = np.array([1.0, 1.0, 20.0]) + np.random.default_rng(seed).normal(size=3)
    t_eval = transient + dt * np.arange(n)
    sol = solve_ivp(
        field, (0.0, t_eval[-1]), start, t_eval=t_eval, method="DOP853", rtol=1e-9, atol=1e-9
    )
    return sol.y.T


def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, n_out),
    )


class PointVAE(nn.Module):
    """MLP VAE on points ``(B, 3)`` with a Gaussian decoder of learned per-axis σ."""

    def __init__(self, latent_dim: int = 3, hidden: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp(3, 2 * latent_dim, hidden)
        self.decoder = _mlp(latent_dim, 3, hidden)
        self.log_sigma = nn.Parameter(torch.full((3,), -1.0))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per point, nats (mean over the batch)."""
        mean, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).sum(-1)
        resid = (x - self.decoder(z)) / self.log_sigma.exp()
        nll = (0.5 * resid**2 + self.log_sigma + 0.5 * math.log(2 * math.pi)).sum(-1)
        return (nll + kl).mean()

    @torch.no_grad()
    def sample(self, n: int, noise: bool = True) -> torch.Tensor:
        """``n`` samples ``μ(z) + σ ε`` (``noise=False``: the decoder means ``μ(z)``)."""
        mu = self.decoder(torch.randn(n, self.latent_dim))
        return mu + torch.randn_like(mu) * self.log_sigma.exp() if noise else mu


class PointGAN(nn.Module):
    """A generator ``z -> x`` (deterministic) and a discriminator, both small MLPs."""

    def __init__(self, latent_dim: int = 3, hidden: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = _mlp(latent_dim, 3, hidden)
        self.discriminator = _mlp(3, 1, hidden)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` generated points ``G(z)``, ``z ~ N(0, I)``."""
        return self.generator(torch.randn(n, self.latent_dim))


def train_vae(points: torch.Tensor, steps: int, batch: int = 256, seed: int = 0) -> PointVAE:
    """Fit a :class:`PointVAE` to ``points`` ``(N, 3)`` with Adam."""
    torch.manual_seed(seed)
    vae = PointVAE()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x = points[torch.randint(len(points), (batch,))]
        opt.zero_grad()
        vae.loss(x).backward()
        opt.step()
        sched.step()
    return vae


def train_gan(points: torch.Tensor, steps: int, batch: int = 256, seed: int = 0) -> PointGAN:
    """Fit a :class:`PointGAN` to ``points`` with the non-saturating GAN loss."""
    torch.manual_seed(seed)
    gan = PointGAN()
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.9))
    bce = nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    for _ in range(steps):
        real = points[torch.randint(len(points), (batch,))]
        fake = gan.generator(torch.randn(batch, gan.latent_dim))
        opt_d.zero_grad()
        d_loss = bce(gan.discriminator(real), ones) + bce(gan.discriminator(fake.detach()), zeros)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(gan.discriminator(fake), ones).backward()
        opt_g.step()
    return gan


def run(outdir: Path, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Correlation dimension of Lorenz data, VAE samples and GAN samples; see module doc."""
    n, steps = (2000, 1500) if fast else (5000, 6000)
    raw = lorenz_trajectory(n, seed=seed)
    data = (raw - raw.mean(0)) / raw.std(0)
    points = torch.as_tensor(data, dtype=torch.float32)
    vae = train_vae(points, steps, seed=seed)
    gan = train_gan(points, steps, seed=seed)
    torch.manual_seed(seed + 1)
    sets = {
        "data": (data, THEILER),
        "vae (with decoder noise)": (vae.sample(n).numpy(), 0),
        "vae (decoder mean)": (vae.sample(n, noise=False).numpy(), 0),
        "gan": (gan.sample(n).numpy(), 0),
    }
    rows, curves = [], {}
    for label, (pts, theiler) in sets.items():
        fit = correlation_dimension(pts, r_range=R_RANGE, theiler=theiler, seed=seed)
        small = correlation_dimension(pts, r_range=R_SMALL, theiler=theiler, seed=seed)
        rows.append(
            {
                "points": label,
                "n": fit.n_points,
                "theiler": theiler,
                "dimension": fit.dimension,
                "dimension_small_r": small.dimension,
            }
        )
        curves[label] = fit
    dims = {row["points"]: row["dimension"] for row in rows}
    sigma = vae.log_sigma.exp().detach().numpy()

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(data[:, 0], data[:, 2], ",", alpha=0.5, label="data")
    axes[0].plot(*sets["gan"][0][:, [0, 2]].T, ",", alpha=0.5, label="gan")
    axes[0].plot(*sets["vae (with decoder noise)"][0][:, [0, 2]].T, ",", alpha=0.5, label="vae")
    axes[0].set(xlabel="x (normalised)", ylabel="z (normalised)", title="points (x-z projection)")
    axes[0].legend(markerscale=20)
    for label, fit in curves.items():
        r, c = np.exp(fit.log_r), np.exp(fit.log_c)
        axes[1].loglog(r, c, label=f"{label}: D={dims[label]:.2f}")
        axes[2].semilogx(r, np.gradient(fit.log_c, fit.log_r), label=label)
    for ax in axes[1:]:
        ax.axvspan(*R_RANGE, color="0.9")
    axes[1].set(xlabel="r", ylabel="C(r)", title="correlation sum (fit range shaded)")
    axes[1].legend(fontsize=7)
    axes[2].axhline(LITERATURE, color="k", ls=":", lw=1)
    axes[2].set(xlabel="r", ylabel="d log C / d log r", ylim=(0, 4), title="local slope")
    numbers = {
        "dimension_data": dims["data"],
        "dimension_vae": dims["vae (with decoder noise)"],
        "dimension_vae_mean": dims["vae (decoder mean)"],
        "dimension_gan": dims["gan"],
        "dimension_vae_small_r": rows[1]["dimension_small_r"],
        "dimension_gan_small_r": rows[3]["dimension_small_r"],
        "vae_decoder_sigma_mean": float(sigma.mean()),
        "r_min": R_RANGE[0],
        "r_max": R_RANGE[1],
        "r_small": f"{R_SMALL[0]}-{R_SMALL[1]}",
    }
    holds = abs(dims["data"] - LITERATURE) < 0.15 and dims["gan"] < dims["vae (with decoder noise)"]
    expectation = (
        f"data ≈ {LITERATURE} (literature 2.05 ± 0.01); VAE samples with decoder noise near 3; "
        "GAN samples near 2.05"
    )
    return finish(outdir, "lorenz", rows, fig, numbers, expectation, holds)
