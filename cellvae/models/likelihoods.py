"""Decoder likelihoods p(x | z) on data ``x`` in ``[-1, 1]`` with ``L = 2**bits`` levels.

Every likelihood reads decoder parameters ``params`` shaped ``(B, P * C, *spatial)``, laid out
parameter-major: channels ``[p * C:(p + 1) * C]`` hold parameter ``p`` for all ``C`` image
channels. ``log_prob`` is per pixel, in nats, shaped like ``x``. Discretized likelihoods put a
bin of width ``2 / (L - 1)`` on each level, the first and last bins taking the tails, so the
probabilities of the ``L`` levels sum to one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellvae.errors import ConfigError, check_choice, check_range
from cellvae.models.blocks import soft_floor

LIKELIHOODS = ("gaussian", "bernoulli", "dlogistic", "dmol")
SIGMA_MODES = ("fixed", "learned", "pixel")
#: default smallest scale (logistic ``s``, Gaussian ``σ``) as a fraction of the bin width
MIN_SCALE_FRACTION = 0.1
_LOG_2PI = math.log(2.0 * math.pi)


def check_bits(bits: int) -> None:
    """Raise :class:`ConfigError` (field ``bits``) unless ``bits`` is an integer in 1..16."""
    if isinstance(bits, bool) or int(bits) != bits:
        raise ConfigError(f"bits: {bits!r} is not an integer; allowed [1, 16]")
    check_range("bits", bits, 1, 16)


def default_min_log_scale(bits: int) -> float:
    """Floor of the log-scale tied to the bit depth: ``log(MIN_SCALE_FRACTION · 2/(L-1))``.

    A discretized logistic at this scale, centred on a level, puts ``tanh(1/(4·0.1)) = 0.987``
    of its mass on that level (0.02 bits), at any bit depth. A fixed floor would cap the rate
    instead: ``-7`` allows no better than ~2.9 bits/dim at 12 bits and ~6.9 at 16 bits.
    """
    check_bits(bits)
    return math.log(MIN_SCALE_FRACTION * 2.0 / (2**bits - 1))


def quantize(x: Tensor, bits: int) -> Tensor:
    """Snap values to the nearest of the ``2**bits`` levels ``2k/(L-1) - 1``, clamped to [-1, 1]."""
    top = 2**bits - 1
    k = torch.round((x.clamp(-1.0, 1.0) + 1.0) * (top / 2.0))
    return k * (2.0 / top) - 1.0


class Float32Conv2d(nn.Conv2d):
    """``Conv2d`` computed in float32 under autocast (input cast up, autocast off)."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


class Float32Conv3d(nn.Conv3d):
    """``Conv3d`` computed in float32 under autocast (input cast up, autocast off)."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


def _floor(min_log_scale: float | None, bits: int) -> float:
    if min_log_scale is None:
        return default_min_log_scale(bits)
    if not math.isfinite(min_log_scale):
        raise ConfigError(f"min_log_scale: {min_log_scale!r} must be a finite number or null")
    return float(min_log_scale)


class Likelihood(nn.Module):
    """Interface of every decoder likelihood.

    Attributes
    ----------
    channels : int
        Image channels ``C``.
    params_per_channel : int
        ``P``; the decoder outputs ``P * C`` channels.
    bits : int
        Bit depth of the data; ``L = 2**bits`` levels.
    discrete : bool
        True if ``log_prob`` is a log-probability mass over the levels (not a density).
    bin_width : float
        ``2 / (L - 1)``: the spacing of the levels, used to compare densities and masses.
    """

    params_per_channel: int = 1
    discrete: bool = False

    def __init__(self, channels: int, bits: int = 8) -> None:
        super().__init__()
        check_bits(bits)
        self.channels = int(channels)
        self.bits = int(bits)
        self.levels = 2**self.bits
        self.bin_width = 2.0 / (self.levels - 1)

    @property
    def out_channels(self) -> int:
        """Decoder output channels ``P * C``."""
        return self.params_per_channel * self.channels

    def head(self, ndim: int, in_channels: int) -> nn.Module:
        """The decoder's last layer: a 1×1 convolution to the ``P * C`` parameters that runs in
        float32 even under autocast (bf16 means are off by up to half an 8-bit bin near ±1,
        which cost +0.03 to +0.13 bits/dim)."""
        cls = {2: Float32Conv2d, 3: Float32Conv3d}[ndim]
        return cls(in_channels, self.out_channels, 1)

    def split(self, params: Tensor) -> Tensor:
        """``(B, P*C, *S) -> (B, P, C, *S)``."""
        b, _, *spatial = params.shape
        return params.reshape(b, self.params_per_channel, self.channels, *spatial)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Per-pixel log-likelihood of ``x`` (nats), shaped like ``x``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """Expected value, shaped like ``x``, in [-1, 1]."""
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        """Most probable value (of the dominant component for mixtures), shaped like ``x``."""
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:
        """One draw per pixel, shaped like ``x``, in [-1, 1] (on the level grid if discrete)."""
        raise NotImplementedError


class Gaussian(Likelihood):
    """Gaussian ``N(mu, sigma**2)`` density per pixel.

    ``sigma_mode='fixed'`` keeps ``sigma`` constant, so ``-log_prob`` is the MSE scaled by
    ``1 / (2 sigma**2)`` plus a constant (the blurry baseline); ``'learned'`` learns one
    log-sigma per channel; ``'pixel'`` predicts a log-sigma per pixel (``P = 2``), softly
    floored at ``min_log_scale``.
    """

    def __init__(
        self,
        channels: int,
        bits: int = 8,
        sigma_mode: str = "fixed",
        sigma: float = 0.1,
        min_log_scale: float | None = None,
    ) -> None:
        super().__init__(channels, bits)
        check_choice("sigma_mode", sigma_mode, SIGMA_MODES)
        if not sigma > 0:
            raise ConfigError(f"sigma: {sigma!r} must be > 0")
        self.sigma_mode = sigma_mode
        self.min_log_scale = _floor(min_log_scale, self.bits)
        self.params_per_channel = 2 if sigma_mode == "pixel" else 1
        log_sigma = torch.full((channels,), math.log(sigma))
        if sigma_mode == "learned":
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def mu_log_sigma(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-sigma, each ``(B, C, *S)``."""
        p = self.split(params)
        mu = p[:, 0]
        if self.sigma_mode == "pixel":
            return mu, soft_floor(p[:, 1], self.min_log_scale)
        shape = (1, self.channels) + (1,) * (mu.ndim - 2)
        return mu, self.log_sigma.reshape(shape).expand_as(mu)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mu, log_sigma = self.mu_log_sigma(params)
        return -0.5 * (((x - mu) * torch.exp(-log_sigma)) ** 2 + _LOG_2PI) - log_sigma

    def mean(self, params: Tensor) -> Tensor:
        return self.mu_log_sigma(params)[0].clamp(-1.0, 1.0)

    def mode(self, params: Tensor) -> Tensor:
        return self.mean(params)

    def sample(self, params: Tensor) -> Tensor:
        mu, log_sigma = self.mu_log_sigma(params)
        return (mu + torch.exp(log_sigma) * torch.randn_like(mu)).clamp(-1.0, 1.0)


class Bernoulli(Likelihood):
    """Bernoulli on binary data: target ``(x + 1) / 2`` in {0, 1}, one logit per pixel."""

    discrete = True

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits = self.split(params)[:, 0]
        target = (x + 1.0) * 0.5
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    def mean(self, params: Tensor) -> Tensor:
        return 2.0 * torch.sigmoid(self.split(params)[:, 0]) - 1.0

    def mode(self, params: Tensor) -> Tensor:
        return torch.where(self.split(params)[:, 0] > 0, 1.0, -1.0)

    def sample(self, params: Tensor) -> Tensor:
        return 2.0 * torch.bernoulli(torch.sigmoid(self.split(params)[:, 0])) - 1.0


def discretized_logistic_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor, bits: int) -> Tensor:
    """Log-mass of level ``x`` under a logistic discretized to ``2**bits`` levels on [-1, 1].

    The bin of level ``x`` is ``[x - h, x + h]`` with ``h = 1 / (L - 1)``; the first bin extends
    to ``-inf`` and the last to ``+inf``. With ``a = (x + h - mean) / s`` and
    ``b = (x - h - mean) / s`` the interior mass is ``sigmoid(a) - sigmoid(b) =
    sigmoid(a) * sigmoid(-b) * (1 - exp(-(a - b)))``, evaluated in log space with
    ``logsigmoid`` and ``log(-expm1(.))``, so it stays finite deep in the tails and for tiny
    scales. When the bin is a vanishing fraction of the scale (``a - b < 1e-6``) the last factor
    is replaced by its first-order value ``a - b`` (PixelCNN++'s mid-bin density fallback).
    Broadcasts; returns nats.
    """
    top = 2**bits - 1
    half = 1.0 / top
    inv_s = torch.exp(-log_scale)
    centred = x - mean
    a = inv_s * (centred + half)
    b = inv_s * (centred - half)
    log_width = math.log(2.0 * half) - log_scale  # log(a - b)
    width = torch.exp(log_width).clamp(min=1e-6)
    log_bin_frac = torch.where(
        log_width < math.log(1e-6), log_width, torch.log(-torch.expm1(-width))
    )
    interior = F.logsigmoid(a) + F.logsigmoid(-b) + log_bin_frac
    k = torch.round((x + 1.0) * (top / 2.0))
    return torch.where(k <= 0, F.logsigmoid(a), torch.where(k >= top, F.logsigmoid(-b), interior))


class DiscretizedLogisticMixture(Likelihood):
    """Mixture of ``K`` discretized logistics per pixel, channels independent.

    Parameters per channel: ``K`` mixture logits (only if ``K > 1``), ``K`` means and ``K``
    log-scales, softly floored at ``min_log_scale`` (``None``: :func:`default_min_log_scale`
    of ``bits``). ``K = 1`` is the single discretized
    logistic (``P = 2``).
    """

    discrete = True

    def __init__(
        self,
        channels: int,
        bits: int = 8,
        n_mixtures: int = 5,
        min_log_scale: float | None = None,
    ) -> None:
        super().__init__(channels, bits)
        check_range("n_mixtures", n_mixtures, 1)
        self.n_mixtures = int(n_mixtures)
        self.min_log_scale = _floor(min_log_scale, self.bits)
        self.params_per_channel = 2 * self.n_mixtures + (self.n_mixtures > 1) * self.n_mixtures

    def components(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log mixture weights, means and log-scales, each ``(B, K, C, *S)``."""
        p = self.split(params)
        k = self.n_mixtures
        if k == 1:
            log_w = torch.zeros_like(p[:, :1])
            means, raw_scales = p[:, :1], p[:, 1:2]
        else:
            log_w = torch.log_softmax(p[:, :k], dim=1)
            means, raw_scales = p[:, k : 2 * k], p[:, 2 * k :]
        return log_w, means, soft_floor(raw_scales, self.min_log_scale)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        log_w, means, log_scales = self.components(params)
        comp = discretized_logistic_log_prob(x.unsqueeze(1), means, log_scales, self.bits)
        return torch.logsumexp(log_w + comp, dim=1)

    def mean(self, params: Tensor) -> Tensor:
        """Mixture of the component means clipped to [-1, 1] (exact up to the tail bins)."""
        log_w, means, _ = self.components(params)
        return (torch.exp(log_w) * means.clamp(-1.0, 1.0)).sum(dim=1).clamp(-1.0, 1.0)

    def mode(self, params: Tensor) -> Tensor:
        """Level nearest to the mean of the heaviest component."""
        log_w, means, _ = self.components(params)
        idx = log_w.argmax(dim=1, keepdim=True)
        return quantize(means.gather(1, idx).squeeze(1), self.bits)

    def sample(self, params: Tensor) -> Tensor:
        """Pick a component, draw a logistic, and snap to its level (tails go to the edges)."""
        log_w, means, log_scales = self.components(params)
        gumbel = -torch.log(-torch.log(torch.rand_like(log_w).clamp(1e-7, 1.0 - 1e-7)))
        idx = (log_w + gumbel).argmax(dim=1, keepdim=True)
        mu = means.gather(1, idx).squeeze(1)
        s = torch.exp(log_scales.gather(1, idx).squeeze(1))
        u = torch.rand_like(mu).clamp(1e-7, 1.0 - 1e-7)
        return quantize(mu + s * (torch.log(u) - torch.log1p(-u)), self.bits)


def make_likelihood(
    name: str,
    channels: int,
    bits: int = 8,
    n_mixtures: int = 5,
    sigma_mode: str = "fixed",
    sigma: float = 0.1,
    min_log_scale: float | None = None,
) -> Likelihood:
    """Build a likelihood by name: ``gaussian``, ``bernoulli``, ``dlogistic`` or ``dmol``.

    ``min_log_scale`` floors the log-scale (``None``: :func:`default_min_log_scale` of
    ``bits``). Raises :class:`ConfigError` naming ``likelihood``, ``bits``, ``sigma_mode``,
    ``n_mixtures`` or ``min_log_scale`` for bad values.
    """
    check_choice("likelihood", name, LIKELIHOODS)
    check_bits(bits)
    check_range("channels", channels, 1)
    if name == "gaussian":
        return Gaussian(channels, bits, sigma_mode, sigma, min_log_scale)
    if name == "bernoulli":
        return Bernoulli(channels, bits)
    k = 1 if name == "dlogistic" else n_mixtures
    return DiscretizedLogisticMixture(channels, bits, k, min_log_scale)
