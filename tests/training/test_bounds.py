"""bits/dim of a continuous likelihood is an upper bound on the discrete data's bits/dim."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from cellvae.metrics.likelihood import bits_per_dim
from cellvae.models.likelihoods import Gaussian
from cellvae.training.objective import log_likelihood


def _interior_levels(n: int, bits: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    top = 2**bits - 1
    k = torch.randint(1, top, (1, 1, n), generator=gen).float()  # no edge bins
    return k * (2 / top) - 1


def test_gaussian_bits_per_dim_bounds_the_exact_bin_mass():
    # sigma = half a bin, mean on the level: the exact mass of the bin is 2 Phi(1) - 1, i.e.
    # 0.55 bits; the density at the level times the bin width claims 0.33 bits (not a bound)
    torch.manual_seed(0)
    lik = Gaussian(1, bits=8, sigma_mode="fixed", sigma=0.5 * 2 / 255)
    vae = SimpleNamespace(likelihood=lik)
    x = _interior_levels(20000, 8)
    nll = -log_likelihood(vae, x, x).sum() / x.numel()
    bpd = float(bits_per_dim(nll, discrete=False, bin_width=lik.bin_width))
    exact = -math.log2(math.erf(1 / math.sqrt(2)))
    # in expectation: 0.326 + 2 E[u^2] / ln 2 = 0.566 bits >= exact
    assert bpd >= exact
    assert abs(bpd - 0.5665) < 0.01


def test_gaussian_at_its_scale_floor_costs_at_least_zero_bits():
    torch.manual_seed(0)
    lik = Gaussian(1, bits=8, sigma_mode="pixel")
    vae = SimpleNamespace(likelihood=lik)
    x = _interior_levels(4096, 8)
    params = torch.cat([x, torch.full_like(x, -30.0)], dim=1)  # log-sigma pinned at its floor
    nll = -log_likelihood(vae, params, x).sum() / x.numel()
    assert float(bits_per_dim(nll, discrete=False, bin_width=lik.bin_width)) >= 0.0
