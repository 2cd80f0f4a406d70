"""12- and 16-bit data: the fitted rate goes below the cap of the old fixed log-scale floor.

With the old floor ``log s >= -7`` (model units) no interior level can cost less than
``-log2 tanh(w / (4 e^-7))`` bits, ``w = 2 / (2**bits - 1)`` the bin width: 2.90 bits at 12
bits and 6.90 at 16, whatever the data. The floor tied to ``bits`` (a tenth of the bin width)
lets a fit reach the data's own entropy. Known answer: a flat interior at an interior level
with Gaussian noise of a few levels (quantised: about 3 bits of entropy at 16 bits, 1 at 12);
one mean and one log-scale of the hierarchical discretized-logistic model's likelihood (as
``cellvae fit`` builds it) fitted to it must reach that entropy under the default floor and
stay at the cap under ``min_log_scale: -7``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cellvae.training.module import VAEModule


def old_cap(bits: int) -> float:
    """Fewest bits an interior level can cost with the log-scale floored at -7."""
    return -math.log2(math.tanh((2 / (2**bits - 1)) / (4 * math.exp(-7.0))))


def _flat_interior(bits: int, noise_levels: float, n: int = 4096) -> tuple[torch.Tensor, float]:
    """``(1, 1, n)`` model inputs (level ``0.3 (L - 1)`` plus noise) and their entropy, bits."""
    top = 2**bits - 1
    rng = np.random.default_rng(0)
    k = np.clip(np.round(0.3 * top + rng.normal(0.0, noise_levels, n)), 0, top)
    p = np.unique(k, return_counts=True)[1] / n
    x = torch.tensor(2 * k / top - 1, dtype=torch.float32).reshape(1, 1, n)
    return x, float(-(p * np.log2(p)).sum())


def _fitted_bits_per_dim(likelihood: torch.nn.Module, x: torch.Tensor) -> float:
    """Bits per pixel of one mean and one log-scale for all of ``x`` at their best (L-BFGS,
    from 100 bins off and scale 1)."""
    theta = torch.nn.Parameter(torch.tensor([float(x.mean()) + 100 * likelihood.bin_width, 0.0]))
    opt = torch.optim.LBFGS(
        [theta],
        max_iter=200,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )

    def nll() -> torch.Tensor:
        opt.zero_grad()
        loss = -likelihood.log_prob(theta.reshape(1, 2, 1).expand(1, 2, x.shape[-1]), x).mean()
        loss.backward()
        return loss

    opt.step(nll)
    return float(nll().detach()) / math.log(2)


@pytest.mark.parametrize(("bits", "noise_levels"), [(12, 0.5), (16, 2.0)])
def test_fitted_rate_reaches_the_entropy_below_the_old_cap(bits: int, noise_levels: float):
    x, entropy = _flat_interior(bits, noise_levels)
    assert entropy < old_cap(bits) - 1.5  # the data allow far better than the old cap
    rates = {}
    for floor in (None, -7.0):
        module = VAEModule(
            arch="hierarchical",
            likelihood="dlogistic",
            bits=bits,
            patch_size=16,
            widths=[4, 8],
            latent_channels=2,
            min_log_scale=floor,
        )
        rates[floor] = _fitted_bits_per_dim(module.model.likelihood, x)
    # the bits-tied floor: a single logistic reaches the quantised Gaussian's entropy
    assert rates[None] == pytest.approx(entropy, abs=0.1)
    # the old floor: stuck at its cap, whatever the data
    assert rates[-7.0] >= old_cap(bits) - 1e-3
    assert old_cap(bits) == pytest.approx({12: 2.90, 16: 6.90}[bits], abs=0.01)
