"""Where tiles go along one axis and how much each tile counts: the blending windows.

Tiles of length ``t`` start every ``t - overlap`` voxels; the last one is moved back so that
it ends at the image edge, and an axis shorter than ``t`` gets one tile that is padded.
A tile weighs 1 in its middle and ramps up over the voxels it shares with its neighbour by a
raised cosine, ``r(i) = sin²(π (i + ½) / (2 L))`` for ``i < L`` shared voxels; ramps of two
neighbours sum to exactly 1 over their shared voxels, so blending is smooth and seam-free.
A side that touches the image edge keeps full weight.

With a ``margin`` ``m`` (the model's receptive-field radius, where a tile's output is spoiled
by the missing context beyond its edge), the ramp is confined to the middle of the shared
voxels: the first ``m`` of them belong wholly to the tile on the left, the last ``m`` to the
tile on the right, so no tile's spoiled border counts at all. Windows are separable: the weight of
an N-d tile is the outer product of its axes' windows, and the summed weight of the whole grid
is the outer product of the per-axis sums, which is what the blended sum is divided by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellvae.errors import ConfigError


def tile_starts(size: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets (int64) of tiles of length ``tile`` covering ``[0, size)``.

    The step is ``tile - overlap``; the last tile ends at ``size``. ``size <= tile`` gives
    the single start 0.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ConfigError(f"overlap: {overlap} must be in [0, tile) for tile {tile}")
    if size <= tile:
        return np.zeros(1, dtype=np.int64)
    step = tile - overlap
    starts = [*range(0, size - tile, step), size - tile]
    return np.asarray(sorted(set(starts)), dtype=np.int64)


def ramp(length: int) -> np.ndarray:
    """Rising raised-cosine ramp of ``length`` samples, strictly inside (0, 1) (float64)."""
    i = np.arange(length, dtype=np.float64)
    return np.sin(np.pi * (i + 0.5) / (2 * length)) ** 2


@dataclass(frozen=True)
class AxisTiling:
    """The tiles along one axis: starts, valid ends, windows and their summed weight.

    Attributes
    ----------
    size, tile : axis length and tile length in voxels.
    starts, ends : ``(K,)`` start and end (exclusive, clipped to ``size``) of each tile.
    windows : ``K`` float64 arrays, the weight of each voxel of the tile's valid part.
    total : ``(size,)`` summed weight of all tiles at each voxel (always > 0).
    """

    size: int
    tile: int
    starts: np.ndarray
    ends: np.ndarray
    windows: tuple[np.ndarray, ...]
    total: np.ndarray

    def touching(self, lo: int, hi: int) -> np.ndarray:
        """Indices of the tiles that share a voxel with ``[lo, hi)``."""
        return np.flatnonzero((self.starts < hi) & (self.ends > lo))


def rising(shared: int, margin: int = 0) -> np.ndarray:
    """Weight of the right tile over ``shared`` voxels: 0 for ``margin``, a raised-cosine
    ramp, then 1 for ``margin`` (the margin shrinks so that the ramp keeps >= 1 voxel)."""
    margin = max(min(margin, (shared - 1) // 2), 0)
    return np.concatenate([np.zeros(margin), ramp(shared - 2 * margin), np.ones(margin)])


def axis_tiling(size: int, tile: int, overlap: int, margin: int = 0) -> AxisTiling:
    """Tile one axis of length ``size`` and build the blending windows (see module doc)."""
    starts = tile_starts(size, tile, overlap)
    ends = np.minimum(starts + tile, size)
    windows = []
    for k, (s, e) in enumerate(zip(starts, ends)):
        w = np.ones(e - s)
        if k > 0:
            shared = int(ends[k - 1] - s)
            w[:shared] *= rising(shared, margin)
        if k < len(starts) - 1:
            shared = int(e - starts[k + 1])
            w[len(w) - shared :] *= rising(shared, margin)[::-1]
        windows.append(w)
    total = np.zeros(size)
    for s, e, w in zip(starts, ends, windows):
        total[s:e] += w
    if margin and not np.all(total > 0):  # a crowded last tile left a voxel unweighted
        return axis_tiling(size, tile, overlap)
    return AxisTiling(size, tile, starts, ends, tuple(windows), total)


def outer(vectors: list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
    """Outer product of 1-D arrays, shape ``(len(v0), len(v1), ...)``."""
    out = np.asarray(vectors[0])
    for v in vectors[1:]:
        out = np.multiply.outer(out, v)
    return out
