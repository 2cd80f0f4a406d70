"""A hierarchical VAE (vdvae-style ladder): an optional global vector, then spatial groups.

Bottom-up, a residual encoder produces features ``a_s`` at scales ``s = 0..S-1`` (each scale
downsamples the one before by its per-axis factors, e.g. ``(1, 2, 2)`` for a stack whose
z-step is coarser than its pixels). Top-down, the decoder starts at the coarsest scale from a
learned constant plus, with a global latent,

    global     q(g | x) = N(mu, sigma) from the pooled coarsest features,  p(g) = N(0, I),

which either generates the top state and modulates every group below it (``map``, the
default) or is added as a per-scale bias (``bias``, the first design); see
:mod:`cellvae.models.global_latent`. One vector of tens of numbers describes the whole patch
wherever the cell sits in it. Then each latent group (one or several per scale) forms

    prior      p(z_i | z_<i)    = N(mu_p, sigma_p)  from the decoder state h,
    posterior  q(z_i | x, z_<i) = N(mu_q, sigma_q)  from [h, a_s]   (training / encoding),

draws ``z_i`` and merges it into the state, ``h <- res(h + proj(z_i))``; between scales the
state is upsampled. The encoder reaches the decoder only through the latents — no U-Net
skips — so every bit of information is paid for in ``KL(q || p)`` and sampling from the prior
needs no input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cellvae.errors import ConfigError, check_choice, check_range
from cellvae.models.base import VAE, VAEOutput
from cellvae.models.blocks import (
    Bottleneck,
    ResBlock,
    SubpixelUp,
    avg_pool,
    conv,
    residual_scale,
    soft_clamp,
    upsample,
)
from cellvae.models.geometry import Factors, resolve_factors, total_factor
from cellvae.models.global_latent import (
    GLOBAL_DECODER,
    GLOBAL_NORM,
    MAP_SIDE,
    GlobalLatent,
    modulate,
)
from cellvae.models.latents import DiagonalGaussian
from cellvae.models.likelihoods import Likelihood

LOGVAR_LIMIT = 10.0  # soft bound on prior/posterior log-variances: |logvar| < 10
FINEST_LATENT = ("full", "half")  # resolution of the finest latent group
HEAD_UPSAMPLE = ("nearest", "shuffle")  # how finest_latent "half" returns to full resolution


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


def _per_scale(
    name: str, value: int | tuple[int, ...] | list[int], n: int, low: int = 1
) -> tuple[int, ...]:
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n:
        raise ConfigError(f"{name}: {values} needs one value per width ({n})")
    for v in values:
        check_range(name, v, low)
    return tuple(int(v) for v in values)


class HierarchicalVAE(VAE):
    """Ladder VAE: an optional global vector latent, then spatial groups at every scale.

    Fully convolutional: any patch whose sides are multiples of ``downsampling`` works.

    Parameters
    ----------
    ndim : int
        2 or 3.
    in_channels : int
        Image channels ``C``.
    likelihood : Likelihood
        Decoder distribution.
    widths : sequence of int
        State channels per scale, finest first; ``S = len(widths)`` scales.
    latent_channels : int or sequence of int
        Latent channels per scale (finest first), or one value for all.
    blocks_per_scale : int
        Residual blocks per scale in the encoder, and per latent group in the decoder.
    groups_per_scale : int or sequence of int
        Latent groups per scale (finest first), or one value for all (vdvae stacks several).
        With a global latent a scale may have 0 groups: its decoder state is then shaped by
        ``g`` alone (through residual blocks that ``g`` modulates), so no spatial latent can
        describe the layout at that scale and it is cheapest to describe it in ``g``.
    global_dim : int
        Size of the global vector latent; 0 = none (the top group is then spatial).
    downsample : per-level factors or None
        One entry per downsampling step (``S - 1``, plus one with ``finest_latent='half'``),
        each an int or ``ndim`` ints; ``None`` = 2 on every axis.
        See :func:`cellvae.models.geometry.resolve_factors`.
    finest_latent : {"full", "half"}
        Resolution of scale 0: the input's (``full``), or downsampled once by a strided stem
        and upsampled back before the likelihood head (``half``, as HDN): about a quarter of
        the finest scale's work in 2D.
    head_upsample : {"nearest", "shuffle"}
        With ``finest_latent='half'``, how the head returns to the input's resolution:
        nearest upsampling then a 3×3 convolution at full resolution, or a sub-pixel
        convolution (:class:`~cellvae.models.blocks.SubpixelUp`) that does its 3×3 work at
        half resolution.
    head_width : int or None
        Channels of the full-resolution head (``finest_latent='half'``); ``None`` =
        ``widths[0]``. Full-resolution work scales with it: with ``widths[0] // 2`` and
        ``shuffle`` the head costs a third of the ``nearest`` head at ``widths[0]``.
    global_decoder : {"map", "bias"}
        How the global latent enters the decoder: it generates the top state and modulates
        every group (``map``), or it is a bias added at every scale (``bias``, the first
        design); see :mod:`cellvae.models.global_latent`.
    global_map : sequence of int or None
        ``map``: spatial shape of the map ``g`` generates (the top scale of a training patch,
        at most 4 per axis, resized to the top scale of any input); ``None`` = 4 per axis.
    global_norm : {"none", "batch"}
        ``batch``: BN-VAE, the global posterior mean batch-normalised with a fixed scale.
    global_logvar_floor : float or None
        Soft floor of the global posterior's log-variance (``None`` = none).
    global_top : bool
        With a global latent and one ``groups_per_scale`` value for all scales, put no
        spatial group at the top scale (the global latent alone shapes it); a per-scale list
        of ``groups_per_scale`` is taken as given.

    Notes
    -----
    ``group_names`` lists the groups in decoding order, most global first: ``g`` (the global
    latent), then ``z{s}`` for a scale with one group or ``z{s}_{j}`` (``j = 0, 1, ...`` in
    decoding order) for a scale with several; it is the order of ``VAEOutput.kl``.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        likelihood: Likelihood,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        latent_channels: int | tuple[int, ...] | list[int] = (8, 8, 8),
        blocks_per_scale: int = 1,
        groups_per_scale: int | tuple[int, ...] | list[int] = 1,
        global_dim: int = 0,
        downsample: Factors | list | None = None,
        finest_latent: str = "full",
        head_upsample: str = "nearest",
        head_width: int | None = None,
        global_decoder: str = "map",
        global_map: tuple[int, ...] | list[int] | None = None,
        global_norm: str = "none",
        global_logvar_floor: float | None = None,
        global_top: bool = False,
    ) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ConfigError(f"ndim: {ndim!r} is not allowed; choose one of 2, 3")
        if not widths or any(w <= 0 for w in widths):
            raise ConfigError(f"widths: {list(widths)} must be a non-empty list of positive ints")
        check_range("blocks_per_scale", blocks_per_scale, 1)
        check_range("global_dim", global_dim, 0)
        check_choice("finest_latent", finest_latent, FINEST_LATENT)
        check_choice("head_upsample", head_upsample, HEAD_UPSAMPLE)
        check_choice("global_decoder", global_decoder, GLOBAL_DECODER)
        check_choice("global_norm", global_norm, GLOBAL_NORM)
        if head_width is not None:
            check_range("head_width", head_width, 1)
        n = len(widths)
        self.ndim = ndim
        self.in_channels = in_channels
        self.likelihood = likelihood
        self.widths = tuple(int(w) for w in widths)
        self.latent_channels = _per_scale("latent_channels", latent_channels, n)
        self.groups_per_scale = _per_scale("groups_per_scale", groups_per_scale, n, low=0)
        self.global_dim = int(global_dim)
        if global_top and self.global_dim and isinstance(groups_per_scale, int):
            self.groups_per_scale = (*self.groups_per_scale[:-1], 0)
        if not self.global_dim and min(self.groups_per_scale) == 0:
            raise ConfigError(
                f"groups_per_scale: {list(self.groups_per_scale)} has a scale without groups, "
                "which needs a global latent (global_dim > 0)"
            )
        self.finest_latent = finest_latent
        self.head_upsample = head_upsample
        self.global_decoder = global_decoder
        half = finest_latent == "half"
        self.factors = resolve_factors(downsample, ndim, n - 1 + half)
        self.downsampling = total_factor(self.factors, ndim)
        #: factor from the input to scale 0, and from scale s - 1 to scale s (entry s)
        self.stem_factor = self.factors[0] if half else (1,) * ndim
        self.scale_factors = ((1,) * ndim, *self.factors[int(half) :])
        #: the scale of each stage, stages stored finest first (decoding runs them reversed)
        self.stage_scale = [s for s in range(n) for _ in range(self.groups_per_scale[s])]
        #: the decoder's units in decoding order: ``(scale, stage index)`` for a latent group,
        #: ``(scale, None)`` for the residual blocks of a scale without groups
        self.units: list[tuple[int, int | None]] = []
        for s in reversed(range(n)):
            stages = [i for i, t in enumerate(self.stage_scale) if t == s]
            self.units += [(s, i) for i in reversed(stages)] or [(s, None)]
        names = []
        for s in reversed(range(n)):
            k = self.groups_per_scale[s]
            names += [f"z{s}"] if k == 1 else [f"z{s}_{j}" for j in range(k)]
        self.group_names = (["g"] if self.global_dim else []) + names
        self.patch_shape = None

        # Stabiliser: residual scaling — the last layer of each encoder branch starts scaled by
        # 1/sqrt(number of branches), so the activations' variance stays O(1) with depth.
        enc_scale = residual_scale(n * blocks_per_scale)
        self.stem = conv(ndim, in_channels, widths[0], 3, stride=self.stem_factor)
        self.enc_blocks = nn.ModuleList(
            nn.Sequential(
                *(ResBlock(ndim, w, last_init=enc_scale) for _ in range(blocks_per_scale))
            )
            for w in widths
        )
        self.enc_down = nn.ModuleList(conv(ndim, widths[s], widths[s + 1], 1) for s in range(n - 1))

        # The latent projections are scaled the same way: every latent adds into one state.
        z_scale = residual_scale(len(self.group_names))
        self.top_state = nn.Parameter(torch.zeros(1, widths[-1], *([1] * ndim)))
        if self.global_dim:
            map_shape = tuple(global_map) if global_map is not None else (MAP_SIDE,) * ndim
            self.global_latent = GlobalLatent(
                ndim,
                self.global_dim,
                widths[-1],
                self.widths,
                tuple(widths[s] for s, _ in self.units),
                z_scale,
                global_decoder,
                map_shape,
                global_norm,
                global_logvar_floor,
            )
        self.stages = nn.ModuleList(
            TopDownStage(ndim, widths[s], self.latent_channels[s], blocks_per_scale, z_scale)
            for s in self.stage_scale
        )
        plain = [s for s, i in self.units if i is None]
        if plain:
            blocks = blocks_per_scale
            self.plain = nn.ModuleDict(
                {
                    str(s): nn.Sequential(
                        *(ResBlock(ndim, widths[s], last_init="zero") for _ in range(blocks))
                    )
                    for s in plain
                }
            )
        self.dec_up = nn.ModuleList(conv(ndim, widths[s], widths[s - 1], 1) for s in range(1, n))
        out_width = widths[0]
        if half:
            # back to the input's resolution: upsample and mix (or both at once), one residual
            # block at full resolution
            out_width = int(head_width or widths[0])
            if head_upsample == "nearest":
                up = conv(ndim, widths[0], out_width, 3)
            else:
                up = SubpixelUp(ndim, widths[0], out_width, self.stem_factor)
            self.head = nn.Sequential(up, ResBlock(ndim, out_width, last_init="zero"))
        self.to_params = likelihood.head(ndim, out_width)

    def encode(self, x: Tensor) -> list[Tensor]:
        """Bottom-up features, finest first: ``a_s`` is ``(B, widths[s], *scale-s sides)``."""
        self._check_input(x)
        h = self.stem(x)
        feats = []
        for s, blocks in enumerate(self.enc_blocks):
            h = blocks(h)
            feats.append(h)
            if s < len(self.enc_down):
                h = self.enc_down[s](avg_pool(h, self.scale_factors[s + 1]))
        return feats

    def _top_spatial(self, patch_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = self.check_patch_shape(patch_shape)
        return tuple(s // d for s, d in zip(shape, self.downsampling))

    def top_down(
        self,
        feats: list[Tensor] | None,
        n: int,
        patch_shape: tuple[int, ...],
        latents: list[Tensor | None] | None = None,
        temperature: float = 1.0,
        use_mean: bool = False,
        params: bool = True,
    ) -> tuple[Tensor | None, list[Tensor], list[DiagonalGaussian], list[DiagonalGaussian | None]]:
        """Run the decoder from the most global group down.

        Parameters
        ----------
        feats : list of Tensor or None
            Encoder features (finest first) to form posteriors; ``None`` samples the prior.
        n : int
            Batch size (used when ``feats`` is ``None``).
        patch_shape : tuple of int
            Spatial output shape.
        latents : list of (Tensor or None), optional
            Per group (order of ``group_names``), a latent that overrides the draw.
        temperature : float
            Prior standard-deviation scale when sampling from the prior.
        use_mean : bool
            Take posterior means instead of draws.
        params : bool
            Decode to likelihood parameters; ``False`` stops after the last latent group
            (no output head) for callers that want only the latents, and returns ``None``.

        Returns
        -------
        params, z, priors, posteriors
            ``params`` is ``(n, P*C, *patch_shape)``; the lists follow ``group_names``.
        """
        top = self._top_spatial(patch_shape)
        latents = list(latents) if latents is not None else [None] * len(self.group_names)
        h = self.top_state.expand(n, -1, *top)
        zs, priors, posts = [], [], []
        g, films, bias = None, [None] * len(self.units), False
        if self.global_dim:
            g, prior, post = self._global(feats, n, latents.pop(0), temperature, use_mean)
            zs.append(g)
            priors.append(prior)
            posts.append(post)
            bias = self.global_decoder == "bias"
            if not bias:
                h = h + self.global_latent.top_map(g, top)
                films = self.global_latent.modulations(g)
        scale = len(self.widths) - 1
        if bias:
            h = h + self.global_latent.broadcast(g, scale)
        latents = iter(latents)
        for (s, i), film in zip(self.units, films):
            while s < scale:  # entering a finer scale
                # a 1x1 convolution commutes with nearest upsampling: mixing channels before
                # upsampling is the same map at 1/prod(factor) of the work
                h = upsample(self.dec_up[scale - 1](h), self.scale_factors[scale])
                scale -= 1
                if bias:
                    h = h + self.global_latent.broadcast(g, scale)
            if i is None:  # a scale without latent groups: g alone shapes it
                h = self.plain[str(s)](modulate(h, film))
                continue
            feature = feats[s] if feats is not None else None
            h, z, prior, post = self.stages[i](
                modulate(h, film), feature, next(latents), temperature, use_mean
            )
            zs.append(z)
            priors.append(prior)
            posts.append(post)
        if not params:
            return None, zs, priors, posts
        if self.finest_latent == "half":
            h = self.head(upsample(h, self.stem_factor) if self.head_upsample == "nearest" else h)
        return self.to_params(F.gelu(h)), zs, priors, posts

    def _global(
        self,
        feats: list[Tensor] | None,
        n: int,
        latent: Tensor | None,
        temperature: float,
        use_mean: bool,
    ) -> tuple[Tensor, DiagonalGaussian, DiagonalGaussian | None]:
        """Draw (or take) the global latent: ``(g, prior N(0, I), posterior or None)``."""
        post = self.global_latent.posterior_of(feats[-1]) if feats is not None else None
        if latent is not None:
            g = latent
        elif post is not None:
            g = post.mean if use_mean else post.rsample()
        else:
            g = temperature * torch.randn(n, self.global_dim, device=self.top_state.device)
        return g, DiagonalGaussian.standard_like(g), post

    def forward(self, x: Tensor) -> VAEOutput:
        feats = self.encode(x)
        params, zs, priors, posts = self.top_down(feats, x.shape[0], tuple(x.shape[2:]))
        kl = [q.kl(p) for q, p in zip(posts, priors)]
        return VAEOutput(params, kl, posts, zs, priors)

    def reconstruct_params(self, x: Tensor, sample: bool = False) -> Tensor:
        feats = self.encode(x)
        return self.top_down(feats, x.shape[0], tuple(x.shape[2:]), use_mean=not sample)[0]

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, logvar)`` of the most global group, each ``(B, D)``.

        ``D`` is ``global_dim`` with a global latent; otherwise the flattened top spatial group.
        """
        top = self.encode(x)[-1]
        if self.global_dim:
            post = self.global_latent.posterior_of(top)
            return post.mean, post.logvar
        h = self.top_state.expand(x.shape[0], -1, *top.shape[2:])
        post = self.stages[-1](h, top, use_mean=True)[3]
        return post.mean.flatten(1), post.logvar.flatten(1)

    def local_summary(self, x: Tensor) -> Tensor:
        """``(B, 2·Σ channels)``: for each spatial group (decoding order, the top group too
        when there is no global latent) its posterior means' per-channel spatial mean, then
        their standard deviation, every group and the decoder taken at posterior means."""
        feats = self.encode(x)
        shape = tuple(x.shape[2:])
        posts = self.top_down(feats, x.shape[0], shape, use_mean=True, params=False)[3]
        spatial = posts[1:] if self.global_dim else posts
        parts = []
        for post in spatial:
            mean = post.mean.flatten(2).float()
            parts += [mean.mean(2), mean.std(2, correction=0)]
        return torch.cat(parts, 1) if parts else x.new_zeros(x.shape[0], 0)

    def decode_embedding(self, mean: Tensor, patch_shape: tuple[int, ...]) -> Tensor:
        top = self._top_spatial(patch_shape)
        if self.global_dim:
            expected, shape = self.global_dim, (self.global_dim,)
        else:
            shape = (self.latent_channels[-1], *top)
            expected = math.prod(shape)
        if mean.ndim != 2 or mean.shape[1] != expected:
            raise ValueError(f"embedding must be (B, {expected}) for {patch_shape}")
        latents = [mean.reshape(mean.shape[0], *shape)] + [None] * (len(self.group_names) - 1)
        return self.top_down(None, mean.shape[0], patch_shape, latents, temperature=0.0)[0]

    def sample_params(
        self, n: int, patch_shape: tuple[int, ...], temperature: float = 1.0
    ) -> Tensor:
        return self.top_down(None, n, tuple(patch_shape), temperature=temperature)[0]
