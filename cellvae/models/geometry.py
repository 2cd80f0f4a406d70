"""Per-axis downsampling of the VAEs' levels, chosen from the voxel size or given explicitly.

Confocal and light-sheet stacks have a z-step several times their pixel size. Halving every
axis at every level would make the coarse levels very flat in z; instead, each level halves
only the axes whose voxel is less than ``sqrt(2)`` times the finest axis' voxel, so the first
levels downsample Y and X only until the voxels are near isotropic (e.g. z 0.5 µm, xy 0.1 µm
gives ``(1, 2, 2), (1, 2, 2), (2, 2, 2), ...``). Factors are in storage order (Z, Y, X).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cellvae.errors import ConfigError

#: an axis whose voxel is within this ratio of the finest axis' voxel counts as isotropic.
ISOTROPY_RATIO = math.sqrt(2.0)

Factors = tuple[tuple[int, ...], ...]


def per_axis(value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """One int for every axis, or a sequence of ``ndim`` ints, as a tuple of ``ndim`` ints."""
    if isinstance(value, int):
        return (int(value),) * ndim
    return tuple(int(v) for v in value)


def describe(value: int | Sequence[int]) -> int | list[int]:
    """A factor for messages: one int when all axes agree, else the per-axis list."""
    sides = per_axis(value, 1) if isinstance(value, int) else tuple(value)
    return sides[0] if len(set(sides)) == 1 else list(sides)


def auto_factors(voxel_size: Sequence[float] | None, ndim: int, n_levels: int) -> Factors:
    """Factors of ``n_levels`` levels that drive the voxels towards isotropy.

    Parameters
    ----------
    voxel_size : sequence of float or None
        Physical voxel size per axis (storage order, any one unit); ``None`` = isotropic,
        which gives the classic ``2`` on every axis at every level.
    ndim : int
        Spatial axes.
    n_levels : int
        Downsampling steps.
    """
    if voxel_size is None:
        return tuple((2,) * ndim for _ in range(n_levels))
    spacing = [float(v) for v in voxel_size]
    if len(spacing) != ndim or min(spacing) <= 0 or not all(map(math.isfinite, spacing)):
        raise ConfigError(f"voxel_size: {spacing} must be {ndim} positive numbers")
    factors = []
    for _ in range(n_levels):
        finest = min(spacing)
        level = tuple(2 if s < ISOTROPY_RATIO * finest else 1 for s in spacing)
        spacing = [s * f for s, f in zip(spacing, level)]
        factors.append(level)
    return tuple(factors)


def resolve_factors(
    downsample: str | Sequence[int | Sequence[int]] | None,
    ndim: int,
    n_levels: int,
    voxel_size: Sequence[float] | None = None,
) -> Factors:
    """The per-level, per-axis factors of a model with ``n_levels`` downsampling steps.

    ``downsample`` is ``"auto"`` (or ``None``): :func:`auto_factors` from ``voxel_size``;
    or one entry per level, each an int (all axes) or ``ndim`` ints, every factor >= 1.
    Bad values raise :class:`ConfigError` naming ``downsample``.
    """
    if downsample is None or downsample == "auto":
        return auto_factors(voxel_size, ndim, n_levels)
    if isinstance(downsample, str) or len(downsample) != n_levels:
        raise ConfigError(
            f"downsample: {downsample!r} must be 'auto' or one factor per level ({n_levels})"
        )
    factors = []
    for level in downsample:
        sides = per_axis(level, ndim)
        if len(sides) != ndim or min(sides) < 1:
            raise ConfigError(
                f"downsample: {list(downsample)} needs per level one int or {ndim} ints >= 1"
            )
        factors.append(sides)
    return tuple(factors)


def total_factor(factors: Factors, ndim: int) -> tuple[int, ...]:
    """Product of the level factors per axis: the total downsampling ``(d_Z, d_Y, d_X)``."""
    return tuple(math.prod(level[a] for level in factors) for a in range(ndim))


def plain(factors: Factors) -> list[list[int]]:
    """Factors as nested lists (what a checkpoint's hyper-parameters and YAML store)."""
    return [list(level) for level in factors]
