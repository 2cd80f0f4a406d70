"""Diagonal Gaussian latents: reparameterised sampling, analytic KL and free bits.

All quantities are elementwise and in nats; callers sum over the dimensions they need. They
are computed in float32 whatever the dtype of the parameters: under bf16 autocast the KL of a
near-collapsed unit, ``exp(logvar) - 1 - logvar`` with ``logvar ≈ 0``, cancels to noise (a sum
of -5.9 nats where the exact value is +2.5 was measured).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_LOG_2PI = math.log(2.0 * math.pi)


class DiagonalGaussian:
    """A Gaussian with diagonal covariance, ``N(mean, exp(logvar))``.

    Parameters
    ----------
    mean, logvar : Tensor
        Same shape, e.g. ``(B, D)`` for a vector latent or ``(B, c, *spatial)`` for a
        spatial one. ``logvar`` is the natural log of the variance.
    """

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} differ")
        self.mean = mean
        self.logvar = logvar

    @classmethod
    def standard_like(cls, z: Tensor) -> DiagonalGaussian:
        """The standard normal ``N(0, I)`` with the shape, dtype and device of ``z``."""
        zeros = torch.zeros_like(z)
        return cls(zeros, zeros)

    @property
    def std(self) -> Tensor:
        """Standard deviation, ``exp(logvar / 2)``."""
        return torch.exp(0.5 * self.logvar)

    @property
    def shape(self) -> torch.Size:
        """Shape of one draw."""
        return self.mean.shape

    def rsample(self, temperature: float = 1.0) -> Tensor:
        """Reparameterised draw ``mean + temperature * std * eps`` (differentiable)."""
        if temperature == 0.0:
            return self.mean
        return self.mean + temperature * self.std * torch.randn_like(self.mean)

    def log_prob(self, z: Tensor) -> Tensor:
        """Elementwise log-density of ``z`` in nats (float32), shaped like ``z``."""
        mean, logvar = self.mean.float(), self.logvar.float()
        return -0.5 * (_LOG_2PI + logvar + (z.float() - mean) ** 2 * torch.exp(-logvar))

    def kl_standard_normal(self) -> Tensor:
        """Elementwise ``KL(self || N(0, 1))`` in nats (float32)."""
        mean, logvar = self.mean.float(), self.logvar.float()
        return 0.5 * (mean**2 - logvar + torch.expm1(logvar))

    def kl(self, other: DiagonalGaussian) -> Tensor:
        """Elementwise ``KL(self || other)`` in nats (float32)."""
        mean, logvar = self.mean.float(), self.logvar.float()
        o_mean, o_logvar = other.mean.float(), other.logvar.float()
        diff = logvar - o_logvar
        # exp(d) - 1 - d with expm1: no cancellation when the two variances are close
        return 0.5 * (torch.expm1(diff) - diff + (mean - o_mean) ** 2 * torch.exp(-o_logvar))

    def detach(self) -> DiagonalGaussian:
        """A copy cut from the autograd graph."""
        return DiagonalGaussian(self.mean.detach(), self.logvar.detach())


def free_bits(kl: Tensor, lambda_: float) -> Tensor:
    """KL with free bits (Kingma et al. 2016), in nats per example.

    The KL is averaged over the batch (dim 0); each remaining element is then clamped to at
    least ``lambda_`` and the results are summed. Elements whose batch-mean KL is below
    ``lambda_`` contribute the constant ``lambda_`` and no gradient; the others keep theirs.
    The granularity is the caller's choice: pass ``kl.flatten(1).sum(1)`` (shape ``(B,)``)
    for one budget per latent group, ``kl.flatten(2).sum(2)`` for one per channel, or the
    elementwise KL for one per dimension.

    Parameters
    ----------
    kl : Tensor
        Per-example KL, batch first, ``(B, ...)``, nats.
    lambda_ : float
        Free nats per element (``>= 0``); ``0`` gives the plain batch-mean KL.
    """
    if lambda_ < 0:
        raise ValueError(f"lambda_ must be >= 0, got {lambda_}")
    per_element = kl.mean(dim=0)
    return torch.clamp(per_element, min=lambda_).sum()
