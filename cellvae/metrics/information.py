"""How much a latent tells about its input: mutual-information estimates, not variance cuts.

A latent unit is useful when its posterior *mean* moves across inputs by more than the
posterior's own spread. The variance of the mean alone (the classic "active units" test of
Burda et al. 2016) depends on the unit's scale: a unit whose mean varies by 0.008 with a
posterior spread of 0.001 tells the decoder a lot, while one whose mean is pinned to unit
variance by batch normalisation (BN-VAE) but whose spread is 1 tells it almost nothing. Two
estimates in nats, both from posterior means ``mu`` and log-variances ``logvar``:

- per unit, the information of a Gaussian channel whose signal is the mean and whose noise is
  the posterior variance, ``I_d = 1/2 log(1 + Var_x(mu_d) / E_x[sigma_d^2])``
  (:func:`unit_information`). It is exact when the means are Gaussian across inputs and the
  spread is the same for all; otherwise it is the capacity of a channel with that signal
  power and mean noise power. A unit of a spatial group is one channel: its moments are
  pooled over positions and its information is that of one position times the number of
  positions (:func:`group_information`), the nats per image it can carry; a channel whose
  every position tells a little still tells a lot about the image.
- for a whole group, the minibatch estimate of ``I(x; z) = E_x KL(q(z|x) || q(z))`` with the
  aggregate posterior ``q(z)`` replaced by the mixture of the batch's posteriors
  (:func:`mutual_information`, as Hoffman & Johnson 2016 and He et al. 2019). It needs no
  Gaussian assumption but cannot exceed ``log N`` for ``N`` inputs.

The KL to the prior that a group pays splits into this information and the distance of the
aggregate posterior from the prior, ``E_x KL(q(z|x)||p(z)) = I(x; z) + KL(q(z)||p(z))``:
a group with many nats of KL and little information buys a narrow posterior, not a code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: a unit is informative when it carries more than this many nats (a signal-to-noise power
#: ratio of about 0.22: the mean moves by half the posterior's spread across inputs)
INFORMATIVE_NATS = 0.1


def unit_information(means: Tensor, logvars: Tensor) -> Tensor:
    """Gaussian-channel information per unit, ``1/2 log(1 + Var(mu) / E[sigma^2])``, nats.

    Parameters
    ----------
    means, logvars : Tensor
        ``(N, D)`` posterior means and log-variances of ``N`` inputs.

    Returns
    -------
    Tensor
        ``(D,)`` float64, nats; 0 for a unit whose mean does not vary.
    """
    signal = means.double().var(dim=0, unbiased=False)
    noise = logvars.double().exp().mean(dim=0)
    return information_from_moments(signal, noise)


def group_information(means: Tensor, logvars: Tensor) -> Tensor:
    """Per unit, nats per input: :func:`unit_information` of a vector latent ``(N, D)``, or
    of each channel of a spatial one ``(N, c, *S)`` pooled over positions, times ``prod(S)``."""
    if means.ndim <= 2:
        return unit_information(means, logvars)
    positions = math.prod(means.shape[2:])
    pooled = [v.transpose(0, 1).flatten(1).T for v in (means, logvars)]
    return positions * unit_information(*pooled)


def information_from_moments(signal: Tensor, noise: Tensor) -> Tensor:
    """``1/2 log(1 + signal / noise)`` per unit, from ``Var(mu)`` and ``E[sigma^2]`` (nats).

    The streamed form of :func:`unit_information` (validation accumulates the sums).
    """
    signal = signal.double().clamp_min(0.0)
    noise = noise.double().clamp_min(torch.finfo(torch.float64).tiny)
    return 0.5 * torch.log1p(signal / noise)


def informative_units(means: Tensor, logvars: Tensor, nats: float = INFORMATIVE_NATS) -> int:
    """Number of units whose :func:`unit_information` exceeds ``nats``."""
    return int((unit_information(means, logvars) > nats).sum())


def mutual_information(
    means: Tensor, logvars: Tensor, draws: int = 1, generator: torch.Generator | None = None
) -> float:
    """Minibatch estimate of ``I(x; z)`` for a diagonal-Gaussian posterior, nats.

    For each input ``i`` a draw ``z_i ~ q(z|x_i)`` scores ``log q(z_i|x_i) - log (1/N) sum_j
    q(z_i|x_j)``; the mean over inputs (and ``draws``) estimates the information. The estimate
    lies in ``[0, log N]``: ``N`` inputs cannot reveal more than which of them was seen.

    Parameters
    ----------
    means, logvars : Tensor
        ``(N, D)`` posterior parameters of ``N`` inputs (flatten spatial groups first).
    draws : int
        Posterior draws per input.
    generator : torch.Generator, optional
        For reproducible draws.
    """
    mu, logvar = means.double(), logvars.double()
    n = mu.shape[0]
    if n < 2:
        return 0.0
    std = (0.5 * logvar).exp()
    total = 0.0
    for _ in range(draws):
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + std * noise.to(mu.device)
        # log q(z_i | x_j) for every pair, (N, N): sum over dimensions of Gaussian log-densities
        diff = z[:, None, :] - mu[None, :, :]
        log_q = -0.5 * (math.log(2 * math.pi) + logvar[None] + diff**2 / logvar.exp()[None])
        log_q = log_q.sum(-1)
        own = log_q.diagonal()
        aggregate = torch.logsumexp(log_q, dim=1) - math.log(n)
        total += float((own - aggregate).mean())
    return max(total / draws, 0.0)
