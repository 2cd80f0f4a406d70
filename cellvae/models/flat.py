"""A flat convolutional VAE with one vector latent: the baseline."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellvae.errors import ConfigError, check_range
from cellvae.models.base import VAE, VAEOutput
from cellvae.models.blocks import ResBlock, conv, residual_scale, soft_clamp
from cellvae.models.geometry import Factors, resolve_factors, total_factor
from cellvae.models.latents import DiagonalGaussian
from cellvae.models.likelihoods import Likelihood

LOGVAR_LIMIT = 10.0  # soft bound on latent log-variances: |logvar| < 10, i.e. std in (7e-3, 150)


class FlatVAE(VAE):
    """Conv encoder → vector latent ``z ∈ R^D`` → conv decoder → likelihood parameters.

    Each of the ``len(widths)`` encoder stages downsamples with a strided convolution (stride 2
    on every axis unless ``downsample`` says otherwise per axis) and applies
    ``blocks_per_scale`` residual blocks; a linear layer maps the flattened features to the
    posterior mean and log-variance. The decoder mirrors it with
    nearest upsampling + 3×3 convolutions. The patch shape is fixed by the linear layers.

    Parameters
    ----------
    ndim : int
        2 or 3.
    in_channels : int
        Image channels ``C``.
    likelihood : Likelihood
        Decoder distribution; the decoder outputs ``likelihood.out_channels`` channels.
    patch_size : sequence of int
        Spatial patch shape, each side divisible by its axis' total downsampling.
    latent_dim : int
        ``D``.
    widths : sequence of int
        Channels per stage, finest first.
    blocks_per_scale : int
        Residual blocks per stage.
    downsample : per-level factors or None
        One entry per stage (an int or ``ndim`` ints), see
        :func:`cellvae.models.geometry.resolve_factors`; ``None`` = 2 on every axis.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        likelihood: Likelihood,
        patch_size: tuple[int, ...] | list[int],
        latent_dim: int = 32,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        blocks_per_scale: int = 1,
        downsample: Factors | list | None = None,
    ) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ConfigError(f"ndim: {ndim!r} is not allowed; choose one of 2, 3")
        check_range("latent_dim", latent_dim, 1)
        if not widths or any(w <= 0 for w in widths):
            raise ConfigError(f"widths: {list(widths)} must be a non-empty list of positive ints")
        self.ndim = ndim
        self.in_channels = in_channels
        self.likelihood = likelihood
        self.factors = resolve_factors(downsample, ndim, len(widths))
        self.downsampling = total_factor(self.factors, ndim)
        self.group_names = ["z"]
        self.patch_shape = None
        self.patch_shape = self.check_patch_shape(patch_size)
        self.latent_dim = latent_dim
        self.widths = tuple(widths)
        self._bottom = tuple(s // d for s, d in zip(self.patch_shape, self.downsampling))
        n_feat = widths[-1] * math.prod(self._bottom)
        scale = residual_scale(len(widths) * blocks_per_scale)

        enc: list[nn.Module] = []
        prev = in_channels
        for w, factor in zip(widths, self.factors):
            enc.append(conv(ndim, prev, w, 3, stride=factor))
            enc += [ResBlock(ndim, w, last_init=scale) for _ in range(blocks_per_scale)]
            prev = w
        self.encoder = nn.Sequential(*enc)
        self.to_posterior = nn.Linear(n_feat, 2 * latent_dim)

        self.from_latent = nn.Linear(latent_dim, n_feat)
        dec: list[nn.Module] = []
        for i in reversed(range(len(widths))):
            out = widths[i - 1] if i > 0 else widths[0]
            dec += [ResBlock(ndim, widths[i], last_init=scale) for _ in range(blocks_per_scale)]
            up = nn.Upsample(scale_factor=tuple(float(f) for f in self.factors[i]), mode="nearest")
            dec += [up, conv(ndim, widths[i], out, 3)]
        self.decoder = nn.Sequential(*dec)
        self.to_params = likelihood.head(ndim, widths[0])

    def posterior(self, x: Tensor) -> DiagonalGaussian:
        """``q(z | x)`` with mean and log-variance ``(B, D)``."""
        self._check_input(x)
        h = F.gelu(self.encoder(x)).flatten(1)
        mean, raw_logvar = self.to_posterior(h).chunk(2, dim=1)
        return DiagonalGaussian(mean, soft_clamp(raw_logvar, LOGVAR_LIMIT))

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters ``(B, P*C, *patch)`` from latents ``(B, D)``."""
        h = self.from_latent(z).reshape(z.shape[0], self.widths[-1], *self._bottom)
        return self.to_params(F.gelu(self.decoder(h)))

    def forward(self, x: Tensor) -> VAEOutput:
        q = self.posterior(x)
        z = q.rsample()
        prior = DiagonalGaussian(torch.zeros_like(q.mean), torch.zeros_like(q.logvar))
        return VAEOutput(self.decode(z), [q.kl_standard_normal()], [q], [z], [prior])

    def reconstruct_params(self, x: Tensor, sample: bool = False) -> Tensor:
        q = self.posterior(x)
        return self.decode(q.rsample() if sample else q.mean)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q = self.posterior(x)
        return q.mean, q.logvar

    def decode_embedding(self, mean: Tensor, patch_shape: tuple[int, ...]) -> Tensor:
        self.check_patch_shape(patch_shape)
        return self.decode(mean)

    def sample_params(
        self, n: int, patch_shape: tuple[int, ...], temperature: float = 1.0
    ) -> Tensor:
        self.check_patch_shape(patch_shape)
        z = temperature * torch.randn(n, self.latent_dim, device=self.device)
        return self.decode(z)
