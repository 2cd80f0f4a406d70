"""Build a VAE from primitive hyper-parameters (what a checkpoint or a config stores)."""

from __future__ import annotations

from cellvae.errors import ConfigError, check_choice, check_range
from cellvae.models.base import VAE
from cellvae.models.flat import FlatVAE
from cellvae.models.geometry import resolve_factors, total_factor
from cellvae.models.global_latent import GLOBAL_DECODER, GLOBAL_NORM, map_shape_for
from cellvae.models.hierarchical import FINEST_LATENT, HierarchicalVAE
from cellvae.models.likelihoods import make_likelihood

ARCHS = ("flat", "hierarchical")


def build_model(
    arch: str = "hierarchical",
    ndim: int = 2,
    in_channels: int = 1,
    likelihood: str = "dlogistic",
    bits: int = 8,
    patch_size: list[int] | tuple[int, ...] = (64, 64),
    latent_dim: int = 32,
    widths: list[int] | tuple[int, ...] = (32, 64, 128),
    latent_channels: int | list[int] = 8,
    blocks_per_scale: int = 1,
    n_mixtures: int = 5,
    sigma_mode: str = "fixed",
    sigma: float = 0.1,
    min_log_scale: float | None = None,
    groups_per_scale: int | list[int] = 1,
    global_dim: int = 0,
    downsample: str | list | None = "auto",
    voxel_size: list[float] | tuple[float, ...] | None = None,
    finest_latent: str = "full",
    head_upsample: str = "nearest",
    head_width: int | None = None,
    global_decoder: str = "map",
    global_norm: str = "none",
    global_logvar_floor: float | None = None,
    global_top: bool = True,
) -> VAE:
    """Validate the options and build a :class:`FlatVAE` or :class:`HierarchicalVAE`.

    ``latent_dim`` is used by ``flat``; ``latent_channels``, ``groups_per_scale``,
    ``global_dim``, ``finest_latent``, ``head_upsample``, ``head_width`` and the ``global_*``
    options by ``hierarchical`` (``global_top``: no spatial group at the top scale when
    ``groups_per_scale`` is one value, see :class:`HierarchicalVAE`). ``patch_size`` fixes
    the flat model's shape, is checked against the hierarchical model's total downsampling
    and sets the shape of the map the global latent generates (the top scale of a patch, at
    most 4 per axis).
    ``downsample`` gives per-level, per-axis factors, or ``"auto"``: chosen from
    ``voxel_size`` (storage order; ``None`` = isotropic, 2 on every axis at every level, the
    layout of models built before these options existed). Bad values raise
    :class:`ConfigError` naming the field.
    """
    check_choice("arch", arch, ARCHS)
    check_choice("ndim", ndim, (2, 3))
    check_range("in_channels", in_channels, 1)
    check_range("blocks_per_scale", blocks_per_scale, 1)
    check_range("global_dim", global_dim, 0)
    check_choice("finest_latent", finest_latent, FINEST_LATENT)
    check_choice("global_decoder", global_decoder, GLOBAL_DECODER)
    check_choice("global_norm", global_norm, GLOBAL_NORM)
    widths = [int(w) for w in widths]
    if not widths or min(widths) <= 0:
        raise ConfigError(f"widths: {widths} must be a non-empty list of positive ints")
    if len(patch_size) != ndim:
        raise ConfigError(f"patch_size: {list(patch_size)} must have ndim={ndim} sides")
    lik = make_likelihood(
        likelihood,
        in_channels,
        bits=bits,
        n_mixtures=n_mixtures,
        sigma_mode=sigma_mode,
        sigma=sigma,
        min_log_scale=min_log_scale,
    )
    if voxel_size is not None and len(voxel_size) != ndim:
        raise ConfigError(f"voxel_size: {list(voxel_size)} must have ndim={ndim} values")
    if arch == "flat":
        check_range("latent_dim", latent_dim, 1)
        factors = resolve_factors(downsample, ndim, len(widths), voxel_size)
        return FlatVAE(
            ndim, in_channels, lik, patch_size, latent_dim, widths, blocks_per_scale, factors
        )
    channels = [latent_channels] if isinstance(latent_channels, int) else list(latent_channels)
    for c in channels:
        check_range("latent_channels", c, 1)
    n_steps = len(widths) - 1 + (finest_latent == "half")
    factors = resolve_factors(downsample, ndim, n_steps, voxel_size)
    top = [max(p // d, 1) for p, d in zip(patch_size, total_factor(factors, ndim))]
    model = HierarchicalVAE(
        ndim,
        in_channels,
        lik,
        widths,
        latent_channels,
        blocks_per_scale,
        groups_per_scale,
        global_dim,
        factors,
        finest_latent,
        head_upsample,
        head_width,
        global_decoder,
        map_shape_for(tuple(top)),
        global_norm,
        global_logvar_floor,
        global_top,
    )
    model.check_patch_shape(patch_size)
    return model
