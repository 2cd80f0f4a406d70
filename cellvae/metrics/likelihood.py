"""Likelihood-based metrics as pure functions on tensors: bits/dim, IWAE bound, active units.

All log-likelihoods are natural-log (nats). Bits per dimension divide by ``ln 2``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LN2 = math.log(2.0)


def dequantize(x: Tensor, bin_width: float) -> Tensor:
    """Uniform dequantization: ``x + u·w`` with ``u ~ U(-1/2, 1/2)`` per element.

    A density ``p`` scored on dequantized data gives a valid bound on the discrete data
    (Theis et al. 2016): ``log P(x) = log E_u[w·p(x + u·w)] >= E_u[log p(x + u·w)] + log w``
    by Jensen, where ``P(x)`` is the mass ``p`` puts on the bin of ``x``. Scored on the levels
    themselves a density can exceed ``1/w`` and "beat" every discrete model.
    """
    return x + (torch.rand_like(x) - 0.5) * bin_width


def discretization_offset(bin_width: float) -> float:
    """Nats per dimension to add to a *density* NLL to compare it with a discrete NLL.

    A density ``p`` on bins of width ``w`` gives probability ``≈ p·w``, hence
    ``-log P = -log p - log w``: the offset is ``-log w`` (positive when ``w < 1``). The sum
    is an upper bound on ``-log P`` only if ``p`` was scored on :func:`dequantize`-d data.
    """
    if bin_width <= 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    return -math.log(bin_width)


def bits_per_dim(
    nll_nats_per_dim: Tensor | float, discrete: bool = True, bin_width: float = 1.0
) -> Tensor | float:
    """Bits per dimension from an NLL in nats per dimension.

    Continuous likelihoods (``discrete=False``) get :func:`discretization_offset` so that
    every likelihood is scored as a probability of the same quantised data; their NLL must
    come from :func:`dequantize`-d data for the result to bound the discrete NLL.
    """
    offset = 0.0 if discrete else discretization_offset(bin_width)
    return (nll_nats_per_dim + offset) / LN2


def iwae_bound(log_weights: Tensor) -> Tensor:
    """Importance-weighted bound (Burda et al. 2016) from log-weights of shape ``(K, B)``.

    ``log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)`` with ``z_k ~ q(z|x)``. Returns
    ``log (1/K) Σ_k w_k`` per item, shape ``(B,)``, in nats. With ``K = 1`` this is the
    single-sample ELBO estimate; it tightens towards ``log p(x)`` as ``K`` grows.
    """
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


def latent_activity(means: Tensor) -> Tensor:
    """Variance over data items of the posterior means, ``Var_x E_q[z]``, shape ``(D,)``.

    ``means`` is ``(N, D)``: one row of posterior means per item.
    """
    return means.double().var(dim=0, unbiased=False).to(means.dtype)


def active_units(means: Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions with ``Var_x E_q[z] > threshold`` (Burda et al. 2016)."""
    return int((latent_activity(means) > threshold).sum())


def unit_moments(means: Tensor) -> tuple[Tensor, Tensor, int]:
    """Streamable sums ``(Σ μ, Σ μ², n)`` per latent unit of a batch of posterior means.

    A unit is one entry of a vector latent ``(B, D)`` or one *channel* of a spatial latent
    ``(B, c, *S)``; a channel's items are all (image, position) pairs, so its activity
    ``Var_{x,s} E_q[z_c(s)]`` does not grow with the patch area. Shapes ``(D,)`` or ``(c,)``.
    """
    m = means.detach().float()
    m = m.transpose(0, 1).flatten(1) if m.ndim > 2 else m.T
    return m.sum(1), (m**2).sum(1), m.shape[1]


def activity_from_moments(total: Tensor, total_sq: Tensor, count: int) -> Tensor:
    """``Var_x E_q[z]`` from streamed sums ``Σ μ`` and ``Σ μ²`` over ``count`` items, ``(D,)``."""
    mean = total / count
    return (total_sq / count - mean**2).clamp_min(0.0)
