"""How far a model looks: its measured receptive field, and the tile overlap it calls for.

A tile's output is spoiled near its edges, where the model misses context that lies beyond
the tile (convolutions see zero padding there instead of the neighbouring image). How far
in that reaches is the model's *effective* receptive field: the distance over which an
output voxel depends on its input. It is measured, not derived from the architecture, by
back-propagating one output voxel at the tile's centre to the input and finding the radius
(per axis) that holds all but ``1 - mass`` of the absolute gradient. The input is fixed (a
seeded draw), so every process (every part of a split run) measures the same radius. A
fully convolutional model is measured on a tile of at most ``PROBE`` voxels a side (seconds
on a CPU), and on the whole tile only if its radius reaches that probe's edge.

Tiles are then blended so that this radius at each inner tile edge gets no weight
(:func:`cellvae.inference.windows.rising`), with a ramp as long again between the two
margins: the default overlap is three radii.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: share of the gradient that the radius must hold
MASS = 0.99
#: tiles overlap by this many receptive-field radii: a spoiled margin on each side, a ramp
RADII_PER_OVERLAP = 3
#: largest tile side measured first
PROBE = 64


def receptive_radius(
    vae: torch.nn.Module, tile: Sequence[int], mass: float = MASS, seed: int = 0
) -> tuple[int, ...]:
    """Per spatial axis, the radius (voxels) holding ``mass`` of the centre voxel's gradient.

    ``vae`` must have ``reconstruct_params(x, sample=False)`` and ``in_channels``; ``tile`` is
    the tile the model will see. Radii are at most half the tile; a model whose output does
    not depend on its input at all (zero gradient) gets radius 0.
    """
    tile = tuple(int(t) for t in tile)
    fixed = getattr(vae, "patch_shape", None) is not None
    down = getattr(vae, "downsampling", 1)
    down = (down,) * len(tile) if isinstance(down, int) else tuple(int(d) for d in down)
    probe = tuple(t if fixed else min(t, max(PROBE // d, 1) * d) for t, d in zip(tile, down))
    radii = _radius(vae, probe, mass, seed)
    if probe != tile and any(2 * r + 2 >= p for r, p in zip(radii, probe)):
        radii = _radius(vae, tile, mass, seed)
    return radii


def _radius(vae: torch.nn.Module, tile: tuple[int, ...], mass: float, seed: int):
    channels = int(getattr(vae, "in_channels", 1))
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((1, channels, *tile), generator=gen) * 2 - 1
    x.requires_grad_(True)
    with torch.enable_grad():
        params = vae.reconstruct_params(x, sample=False)
        centre = tuple(t // 2 for t in tile)
        params[(0, slice(None), *centre)].sum().backward()
    vae.zero_grad(set_to_none=True)
    grad = x.grad.abs().sum(dim=(0, 1)).double().numpy()  # (*tile)
    total = grad.sum()
    if not np.isfinite(total) or total <= 0:
        return (0,) * len(tile)
    radii = []
    for axis, (t, c) in enumerate(zip(tile, centre)):
        profile = grad.sum(axis=tuple(a for a in range(grad.ndim) if a != axis))
        held = np.cumsum([profile[np.abs(np.arange(t) - c) == r].sum() for r in range(t)])
        radii.append(int(np.argmax(held >= mass * total)))
    return tuple(min(r, t // 2) for r, t in zip(radii, tile))


def overlap_for(radius: Sequence[int], tile: Sequence[int]) -> tuple[int, ...]:
    """Default overlap: ``RADII_PER_OVERLAP`` radii, at least 2 voxels, at most half the tile."""
    return tuple(min(max(RADII_PER_OVERLAP * r, 2), t // 2) for r, t in zip(radius, tile))


def margin_for(radius: Sequence[int], overlap: Sequence[int]) -> tuple[int, ...]:
    """Margin that gets no weight: the radius, leaving a ramp of at least a third of the
    overlap (an overlap chosen by hand may be too narrow for the whole radius)."""
    return tuple(max(min(r, o // RADII_PER_OVERLAP), 0) for r, o in zip(radius, overlap))
