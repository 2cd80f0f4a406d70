"""A hierarchical VAE (vdvae-style ladder) with one latent group per scale.

Bottom-up, a residual encoder produces features ``a_s`` at scales ``s = 0..S-1`` (scale ``s``
has sides ``patch / 2**s``). Top-down, starting from a learned constant at the coarsest scale,
each decoder stage forms

    prior      p(z_s | z_>s)    = N(mu_p, sigma_p)  from the decoder state h_s,
    posterior  q(z_s | x, z_>s) = N(mu_q, sigma_q)  from [h_s, a_s]   (training / encoding),

draws ``z_s`` and merges it into the state, ``h_s <- res(h_s + proj(z_s))``, then upsamples.
The encoder reaches the decoder only through the ``z_s`` — no U-Net skips — so every bit of
information is paid for in ``KL(q || p)`` and sampling from the prior needs no input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellvae.errors import ConfigError, check_range
from cellvae.models.base import VAE, VAEOutput
from cellvae.models.blocks import (
    Bottleneck,
    ResBlock,
    avg_pool,
    conv,
    residual_scale,
    soft_clamp,
    upsample,
)
from cellvae.models.latents import DiagonalGaussian
from cellvae.models.likelihoods import Likelihood

LOGVAR_LIMIT = 10.0  # soft bound on prior/posterior log-variances: |logvar| < 10


class TopDownStage(nn.Module):
    """One decoder scale: prior, posterior, latent merge and residual blocks.

    Parameters
    ----------
    ndim, width, latent_channels, blocks : int
        Dimensionality, state channels ``w``, latent channels ``c`` and residual blocks.
    z_scale : float
        Initial scale of the latent projection.
    """

    def __init__(self, ndim: int, width: int, latent_channels: int, blocks: int, z_scale: float):
        super().__init__()
        mid = max(width // 4, 8)
        self.latent_channels = latent_channels
        # Stabiliser: the prior's last layer starts at zero, so every prior starts as N(0, I)
        # and the state passes through unchanged; the model departs from it only as it learns.
        self.prior = Bottleneck(ndim, width, mid, 2 * latent_channels + width, last_init="zero")
        self.posterior = Bottleneck(ndim, 2 * width, mid, 2 * latent_channels)
        self.z_proj = conv(ndim, latent_channels, width, 1)
        with torch.no_grad():
            self.z_proj.weight.mul_(z_scale)
        # Stabiliser: residual branches start at zero, so the untrained decoder is a clean
        # sum of latent projections and gradients reach every stage from step one.
        self.res = nn.Sequential(*(ResBlock(ndim, width, last_init="zero") for _ in range(blocks)))

    def forward(
        self,
        h: Tensor,
        feature: Tensor | None = None,
        z: Tensor | None = None,
        temperature: float = 1.0,
        use_mean: bool = False,
    ) -> tuple[Tensor, Tensor, DiagonalGaussian, DiagonalGaussian | None]:
        """Advance the state ``h`` ``(B, w, *S)`` by one latent.

        With ``feature`` (encoder features of this scale) the posterior is formed and ``z`` is
        drawn from it (its mean if ``use_mean``); without, ``z`` comes from the prior at
        ``temperature``. A given ``z`` overrides both. Returns ``(h, z, prior, posterior)``.
        """
        c = self.latent_channels
        p_mean, p_logvar, dh = self.prior(h).split([c, c, h.shape[1]], dim=1)
        # Stabiliser: log-variances are soft-clamped so exp() can neither explode nor vanish.
        prior = DiagonalGaussian(p_mean, soft_clamp(p_logvar, LOGVAR_LIMIT))
        post = None
        if feature is not None:
            q_mean, q_logvar = self.posterior(torch.cat([h, feature], dim=1)).chunk(2, dim=1)
            post = DiagonalGaussian(q_mean, soft_clamp(q_logvar, LOGVAR_LIMIT))
        if z is None:
            if post is not None:
                z = post.mean if use_mean else post.rsample()
            else:
                z = prior.rsample(temperature)
        h = self.res(h + dh + self.z_proj(z))
        return h, z, prior, post


class HierarchicalVAE(VAE):
    """Ladder VAE with one spatial latent group per scale; fully convolutional.

    Parameters
    ----------
    ndim : int
        2 or 3.
    in_channels : int
        Image channels ``C``.
    likelihood : Likelihood
        Decoder distribution.
    widths : sequence of int
        State channels per scale, finest (full resolution) first; ``S = len(widths)`` scales,
        total downsampling ``2 ** (S - 1)``.
    latent_channels : int or sequence of int
        Latent channels per scale (finest first), or one value for all.
    blocks_per_scale : int
        Residual blocks per scale in the encoder and in the decoder.

    Notes
    -----
    Group ``z{s}`` lives at ``1 / 2**s`` resolution; ``group_names`` lists the coarsest first,
    the order of ``VAEOutput.kl``.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        likelihood: Likelihood,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        latent_channels: int | tuple[int, ...] | list[int] = (8, 8, 8),
        blocks_per_scale: int = 1,
    ) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ConfigError(f"ndim: {ndim!r} is not allowed; choose one of 2, 3")
        if not widths or any(w <= 0 for w in widths):
            raise ConfigError(f"widths: {list(widths)} must be a non-empty list of positive ints")
        n = len(widths)
        if isinstance(latent_channels, int):
            latent_channels = [latent_channels] * n
        if len(latent_channels) != n:
            raise ConfigError(
                f"latent_channels: {list(latent_channels)} needs one value per width ({n})"
            )
        for c in latent_channels:
            check_range("latent_channels", c, 1)
        check_range("blocks_per_scale", blocks_per_scale, 1)
        self.ndim = ndim
        self.in_channels = in_channels
        self.likelihood = likelihood
        self.widths = tuple(widths)
        self.latent_channels = tuple(latent_channels)
        self.downsampling = 2 ** (n - 1)
        self.group_names = [f"z{s}" for s in reversed(range(n))]
        self.patch_shape = None

        # Stabiliser: residual scaling — the last layer of each encoder branch starts scaled by
        # 1/sqrt(number of branches), so the activations' variance stays O(1) with depth.
        enc_scale = residual_scale(n * blocks_per_scale)
        self.stem = conv(ndim, in_channels, widths[0], 3)
        self.enc_blocks = nn.ModuleList(
            nn.Sequential(
                *(ResBlock(ndim, w, last_init=enc_scale) for _ in range(blocks_per_scale))
            )
            for w in widths
        )
        self.enc_down = nn.ModuleList(conv(ndim, widths[s], widths[s + 1], 1) for s in range(n - 1))

        # The latent projections are scaled the same way: S latents add into one state.
        self.top_state = nn.Parameter(torch.zeros(1, widths[-1], *([1] * ndim)))
        self.stages = nn.ModuleList(
            TopDownStage(ndim, w, c, blocks_per_scale, residual_scale(n))
            for w, c in zip(widths, latent_channels)
        )
        self.dec_up = nn.ModuleList(conv(ndim, widths[s], widths[s - 1], 1) for s in range(1, n))
        self.to_params = likelihood.head(ndim, widths[0])

    def encode(self, x: Tensor) -> list[Tensor]:
        """Bottom-up features, finest first: ``a_s`` is ``(B, widths[s], *patch / 2**s)``."""
        self._check_input(x)
        h = self.stem(x)
        feats = []
        for s, blocks in enumerate(self.enc_blocks):
            h = blocks(h)
            feats.append(h)
            if s < len(self.enc_down):
                h = self.enc_down[s](avg_pool(h))
        return feats

    def _top_spatial(self, patch_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(s // self.downsampling for s in self.check_patch_shape(patch_shape))

    def top_down(
        self,
        feats: list[Tensor] | None,
        n: int,
        patch_shape: tuple[int, ...],
        latents: list[Tensor | None] | None = None,
        temperature: float = 1.0,
        use_mean: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[DiagonalGaussian], list[DiagonalGaussian | None]]:
        """Run the decoder from the coarsest scale down.

        Parameters
        ----------
        feats : list of Tensor or None
            Encoder features (finest first) to form posteriors; ``None`` samples the prior.
        n : int
            Batch size (used when ``feats`` is ``None``).
        patch_shape : tuple of int
            Spatial output shape.
        latents : list of (Tensor or None), optional
            Per group (coarsest first), a latent that overrides the draw.
        temperature : float
            Prior standard-deviation scale when sampling from the prior.
        use_mean : bool
            Take posterior means instead of draws.

        Returns
        -------
        params, z, priors, posteriors
            ``params`` is ``(n, P*C, *patch_shape)``; the lists are coarsest first.
        """
        top = self._top_spatial(patch_shape)
        latents = latents if latents is not None else [None] * len(self.stages)
        h = self.top_state.expand(n, -1, *top)
        zs, priors, posts = [], [], []
        for i, s in enumerate(reversed(range(len(self.stages)))):
            feature = feats[s] if feats is not None else None
            h, z, prior, post = self.stages[s](h, feature, latents[i], temperature, use_mean)
            zs.append(z)
            priors.append(prior)
            posts.append(post)
            if s > 0:
                h = self.dec_up[s - 1](upsample(h))
        return self.to_params(F.gelu(h)), zs, priors, posts

    def forward(self, x: Tensor) -> VAEOutput:
        feats = self.encode(x)
        params, zs, priors, posts = self.top_down(feats, x.shape[0], tuple(x.shape[2:]))
        kl = [q.kl(p) for q, p in zip(posts, priors)]
        return VAEOutput(params, kl, posts, zs, priors)

    def reconstruct_params(self, x: Tensor, sample: bool = False) -> Tensor:
        feats = self.encode(x)
        return self.top_down(feats, x.shape[0], tuple(x.shape[2:]), use_mean=not sample)[0]

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        top = self.encode(x)[-1]
        h = self.top_state.expand(x.shape[0], -1, *top.shape[2:])
        post = self.stages[-1](h, top, use_mean=True)[3]
        return post.mean.flatten(1), post.logvar.flatten(1)

    def decode_embedding(self, mean: Tensor, patch_shape: tuple[int, ...]) -> Tensor:
        top = self._top_spatial(patch_shape)
        expected = self.latent_channels[-1] * math.prod(top)
        if mean.ndim != 2 or mean.shape[1] != expected:
            raise ValueError(f"embedding must be (B, {expected}) for {patch_shape}")
        z_top = mean.reshape(mean.shape[0], self.latent_channels[-1], *top)
        latents = [z_top] + [None] * (len(self.stages) - 1)
        return self.top_down(None, mean.shape[0], patch_shape, latents, temperature=0.0)[0]

    def sample_params(
        self, n: int, patch_shape: tuple[int, ...], temperature: float = 1.0
    ) -> Tensor:
        return self.top_down(None, n, tuple(patch_shape), temperature=temperature)[0]
