"""The global latent ``g``: one vector per patch above the spatial hierarchy, the cell embedding.

Its posterior ``q(g | x) = N(mu, sigma)`` reads the coarsest encoder features averaged over
space, so it does not depend on where the cell sits; its prior is ``N(0, I)``. How ``g``
reaches the decoder decides whether it carries what a biologist sees:

- ``bias`` (the first design): a per-scale projection of ``g`` added to the decoder state,
  constant over space. It cannot say "a nucleus of this size, here", so the spatial latents
  take that information and ``g`` stays nearly empty.
- ``map``: ``g`` *generates* the top of the decoder, a coarse map (at most 4 cells per axis)
  resized to the top scale, and modulates the state before every latent group's prior,
  posterior and blocks (FiLM, Perez et al. 2018: ``h * (1 + gamma(g)) + beta(g)``). Layout,
  size and brightness are then cheapest to describe in ``g``, which every spatial prior sees.

Two ways to give ``g`` a committed rate instead of letting the optimiser buy precision:
``norm='batch'`` (BN-VAE, Zhu et al. 2020) normalises the posterior mean over the batch with a
fixed scale, so every unit's mean varies across inputs with variance ``BN_SCALE**2``; and a soft
floor on the posterior log-variance (``logvar_floor``, in the spirit of δ-VAE, Razavi et al.
2019) caps what precision can cost, so KL is spent on moving the mean.

The batch normalisation is a batch *re*-normalisation (Ioffe 2017, :class:`MeanNorm`): in
training its output equals the normalisation by the running statistics that inference uses,
while gradients flow as through the batch's. Plain batch normalisation trains on batch
statistics and encodes with running ones; with a mean that is nearly constant early in
training the two differ by orders of magnitude, and a decoder driven by ``g`` alone then
decodes garbage at inference (measured: 400 bits/dim after 300 steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellvae.models.blocks import conv, soft_clamp, soft_floor
from cellvae.models.latents import DiagonalGaussian

LOGVAR_LIMIT = 10.0  # soft bound on log-variances: |logvar| < 10 (as the spatial groups)
GLOBAL_DECODER = ("bias", "map")
GLOBAL_NORM = ("none", "batch")
#: fixed scale of the batch-normalised posterior mean (BN-VAE's gamma): each unit's mean has
#: this standard deviation across a batch, so KL >= BN_SCALE**2 / 2 nats per unit
BN_SCALE = 0.5
#: largest side of the map that ``g`` generates (per axis; smaller when the top scale is)
MAP_SIDE = 4


def map_shape_for(top: tuple[int, ...]) -> tuple[int, ...]:
    """The map ``g`` generates for a top scale of spatial shape ``top``: ``min(side, 4)``."""
    return tuple(max(1, min(int(t), MAP_SIDE)) for t in top)


class GlobalLatent(nn.Module):
    """A vector latent ``g`` ``(B, D)`` with prior N(0, I) and its routes into the decoder.

    Parameters
    ----------
    ndim : int
        2 or 3.
    dim : int
        ``D``.
    top_width : int
        Channels of the coarsest encoder features (and of the top decoder state).
    widths : sequence of int
        ``bias``: decoder state channels per scale, finest first, one projection each.
    stage_widths : sequence of int
        ``map``: state channels of each latent group in decoding order (FiLM of each).
    z_scale : float
        Initial scale of the projections (as for the spatial latents).
    decoder : {"bias", "map"}
        How ``g`` enters the decoder (module docstring).
    map_shape : tuple of int or None
        ``map``: spatial shape of the generated map (the top scale of a training patch,
        capped at 4 per axis); it is resized to the top scale of any input.
    norm : {"none", "batch"}
        ``batch``: BN-VAE on the posterior mean.
    logvar_floor : float or None
        Soft lower bound on the posterior log-variance (``None`` = only the ±10 clamp).
    """

    def __init__(
        self,
        ndim: int,
        dim: int,
        top_width: int,
        widths: tuple[int, ...],
        stage_widths: tuple[int, ...],
        z_scale: float,
        decoder: str = "bias",
        map_shape: tuple[int, ...] | None = None,
        norm: str = "none",
        logvar_floor: float | None = None,
    ):
        super().__init__()
        self.ndim, self.dim, self.decoder = ndim, dim, decoder
        self.logvar_floor = logvar_floor
        self.posterior = nn.Sequential(
            nn.Linear(top_width, top_width), nn.GELU(), nn.Linear(top_width, 2 * dim)
        )
        if norm == "batch":
            self.mean_norm = MeanNorm(dim)
            self.mean_shift = nn.Parameter(torch.zeros(dim))
        if decoder == "bias":
            self.proj = nn.ModuleList(nn.Linear(dim, w) for w in widths)
            with torch.no_grad():
                for layer in self.proj:
                    layer.weight.mul_(z_scale)
            return
        self.map_shape = tuple(int(s) for s in map_shape or (1,) * ndim)
        self.map_channels = max(8, top_width // 4)
        self.to_map = nn.Linear(dim, self.map_channels * math.prod(self.map_shape))
        self.map_out = conv(ndim, self.map_channels, top_width, 1)
        self.stage_widths = tuple(int(w) for w in stage_widths)
        self.film = nn.Linear(dim, 2 * sum(self.stage_widths))
        with torch.no_grad():
            self.map_out.weight.mul_(z_scale)
            self.film.weight.mul_(z_scale)
            self.film.bias.zero_()

    def posterior_of(self, top_feature: Tensor) -> DiagonalGaussian:
        """``q(g | x)`` from the coarsest features ``(B, w, *S)``, mean and logvar ``(B, D)``."""
        pooled = F.gelu(top_feature).flatten(2).mean(2)
        mean, logvar = self.posterior(pooled).chunk(2, dim=1)
        if hasattr(self, "mean_norm"):
            mean = BN_SCALE * self.mean_norm(mean) + self.mean_shift
        logvar = soft_clamp(logvar, LOGVAR_LIMIT)
        if self.logvar_floor is not None:
            logvar = soft_floor(logvar, self.logvar_floor)
        return DiagonalGaussian(mean, logvar)

    # ------------------------------------------------------------------ decoder routes
    def broadcast(self, g: Tensor, scale: int) -> Tensor:
        """``bias``: projection of ``g`` for ``scale``, ``(B, w_scale, 1, ...)``."""
        return self.proj[scale](g).reshape(g.shape[0], -1, *([1] * self.ndim))

    def top_map(self, g: Tensor, top: tuple[int, ...]) -> Tensor:
        """``map``: the top decoder state ``(B, top_width, *top)`` generated from ``g``."""
        m = self.to_map(g).reshape(g.shape[0], self.map_channels, *self.map_shape)
        if tuple(top) != self.map_shape:
            mode = "bilinear" if self.ndim == 2 else "trilinear"
            m = F.interpolate(m, size=tuple(top), mode=mode, align_corners=False)
        return self.map_out(F.gelu(m))

    def modulations(self, g: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``map``: FiLM ``(scale, shift)`` per decoder unit, decoding order, ``(B, w, 1, ...)``."""
        shape = (g.shape[0], -1, *([1] * self.ndim))
        parts = self.film(g).split([2 * w for w in self.stage_widths], dim=1)
        return [tuple(p.reshape(shape) for p in part.chunk(2, dim=1)) for part in parts]


class MeanNorm(nn.Module):
    """Batch renormalisation of ``(B, D)`` values to zero mean and unit variance per unit.

    Training: ``(x - mean_B) / std_B * r + d`` with ``r = std_B / std_run`` (clipped to
    ``[1/R_MAX, R_MAX]``) and ``d = (mean_B - mean_run) / std_run`` (clipped to ``±D_MAX``),
    both without gradient: numerically ``(x - mean_run) / std_run`` unless clipped, which is
    what inference computes. Running statistics are exponential averages (``MOMENTUM``).
    """

    MOMENTUM = 0.1
    R_MAX = 3.0
    D_MAX = 5.0
    EPS = 1e-10

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D) -> (B, D)``; in training ``B`` must exceed 1."""
        run_std = (self.running_var + self.EPS).sqrt()
        if not self.training:
            return (x - self.running_mean) / run_std
        mean = x.mean(0)
        var = x.var(0, unbiased=False)
        std = (var + self.EPS).sqrt()
        with torch.no_grad():
            r = (std / run_std).clamp(1 / self.R_MAX, self.R_MAX)
            d = ((mean - self.running_mean) / run_std).clamp(-self.D_MAX, self.D_MAX)
            self.running_mean.lerp_(mean, self.MOMENTUM)
            self.running_var.lerp_(x.var(0, unbiased=True), self.MOMENTUM)
        return (x - mean) / std * r + d


def modulate(h: Tensor, film: tuple[Tensor, Tensor] | None) -> Tensor:
    """FiLM: ``h * (1 + scale) + shift`` (``h`` unchanged without modulation)."""
    if film is None:
        return h
    scale, shift = film
    return torch.addcmul(h + shift, h, scale)
