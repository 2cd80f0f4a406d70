"""Where patches come from: patch geometry on a volume, random and grid origins, foreground.

A volume has axes (a subset of ``tczyx``) and a shape; a patch covers all channels, one time
point and a *window* of the spatial axes. 2D patches ``(Y, X)`` from 3D data use a window of
one z plane, so a random origin picks a random plane; 3D patches ``(Z, Y, X)`` need z.
Origins are tuples over the volume's spatial axes (storage order), restricted to a *region*:
one ``(start, stop)`` per spatial axis, used for the train/validation split.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from cellvae.data.normalize import stored_percentile
from cellvae.errors import CellvaeError, ConfigError

Box = tuple[tuple[int, int], ...]
Origin = tuple[int, ...]
T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True)
class PatchLayout:
    """Patch geometry on one volume.

    Attributes
    ----------
    axes
        The volume's axes in storage order, e.g. ``"tczyx"``.
    shape
        The volume's shape, same order.
    window
        Patch extent along each spatial axis of the volume (``1`` on z for 2D patches of 3D
        data).
    region
        ``(start, stop)`` per spatial axis inside which patches are drawn.
    """

    axes: str
    shape: tuple[int, ...]
    window: tuple[int, ...]
    region: Box

    @classmethod
    def build(
        cls,
        path: str,
        axes: str,
        shape: Sequence[int],
        patch_size: Sequence[int],
        ndim: int,
        region: Box | None = None,
    ) -> PatchLayout:
        """Validate ``patch_size`` (length ``ndim``) against a volume and return its layout.

        Raises :class:`CellvaeError` naming ``path`` when the volume (or region) is smaller than
        the patch or has too few spatial axes.
        """
        if ndim not in (2, 3):
            raise ConfigError(f"ndim: {ndim!r} is not allowed; choose one of 2, 3")
        if len(patch_size) != ndim:
            raise ConfigError(f"patch_size: {list(patch_size)} must have {ndim} entries (ndim)")
        spatial = [a for a in axes if a in "zyx"]
        if "y" not in spatial or "x" not in spatial:
            raise CellvaeError(f"{path}: axes {axes!r} lack y and x")
        if ndim == 3 and "z" not in spatial:
            raise ConfigError(f"ndim: 3D patches need a z axis, but {path} has axes {axes!r}")
        sizes = dict(zip(spatial[-ndim:], patch_size))
        window = tuple(sizes.get(a, 1) for a in spatial)
        full = tuple((0, shape[axes.index(a)]) for a in spatial)
        region = full if region is None else tuple((int(a), int(b)) for a, b in region)
        if len(region) != len(spatial):
            raise ConfigError(f"region: {region} must have one (start, stop) per axis {spatial}")
        extent = tuple(b - a for a, b in region)
        if any(w > e for w, e in zip(window, extent)):
            what = "image" if region == full else "region"
            raise CellvaeError(
                f"{path}: {what} of shape {extent} (axes {''.join(spatial)}) is smaller than "
                f"the patch {tuple(patch_size)}"
            )
        return cls(axes=axes, shape=tuple(int(s) for s in shape), window=window, region=region)

    @property
    def spatial_axes(self) -> str:
        """The volume's spatial axes in storage order."""
        return "".join(a for a in self.axes if a in "zyx")

    @property
    def n_times(self) -> int:
        """Number of time points (1 without a t axis)."""
        return self.shape[self.axes.index("t")] if "t" in self.axes else 1

    def index(self, t: int, origin: Origin, channels: slice | Sequence[int]) -> tuple:
        """Index tuple into the stored array for the patch at time ``t`` and ``origin``."""
        spatial = dict(zip(self.spatial_axes, zip(origin, self.window)))
        index: list[Any] = []
        for axis in self.axes:
            if axis == "t":
                index.append(t)
            elif axis == "c":
                index.append(channels)
            else:
                o, w = spatial[axis]
                index.append(slice(o, o + w))
        return tuple(index)


def axis_starts(start: int, stop: int, window: int) -> list[int]:
    """Tile starts along one axis covering ``[start, stop)``, the last tile flush with ``stop``."""
    starts = list(range(start, stop - window + 1, window))
    if starts[-1] + window < stop:
        starts.append(stop - window)
    return starts


def grid_origins(region: Box, window: Sequence[int]) -> list[Origin]:
    """All tile origins covering ``region`` with tiles of ``window`` (row-major order)."""
    per_axis = [axis_starts(a, b, w) for (a, b), w in zip(region, window)]
    return [tuple(o) for o in itertools.product(*per_axis)]


def uniform_origin(rng: np.random.Generator, region: Box, window: Sequence[int]) -> Origin:
    """A uniformly random origin whose window lies inside ``region``."""
    return tuple(int(rng.integers(a, b - w + 1)) for (a, b), w in zip(region, window))


def foreground_threshold(
    channel_stats: dict[str, Any], background_pct: float = 50.0, bright_pct: float = 99.0
) -> float:
    """Raw intensity above which a voxel counts as foreground: midway from median to bright.

    With sparse cells on a dark background the median is background and the 99th percentile
    is inside cells, so the midpoint separates them without reading any pixels.
    """
    low = stored_percentile(channel_stats, background_pct, "foreground background_pct")
    high = stored_percentile(channel_stats, bright_pct, "foreground bright_pct")
    return low + 0.5 * (high - low)


def foreground_fraction(patch: np.ndarray, thresholds: Sequence[float]) -> float:
    """Largest fraction, over channels, of voxels above the channel's threshold.

    ``patch`` is ``(C, *spatial)`` raw intensities; ``thresholds`` one value per channel.
    """
    return max(float(np.mean(patch[c] > t)) for c, t in enumerate(thresholds))


def rejection_sample(
    propose: Callable[[], T],
    score: Callable[[T], tuple[float, P]],
    min_score: float,
    max_tries: int,
) -> tuple[T, P]:
    """Draw proposals until one scores ``>= min_score``; after ``max_tries`` keep the best.

    ``score`` returns ``(value, payload)`` so the patch read to score a proposal is reused.
    The fallback keeps volumes with little foreground usable at a bounded cost per patch.
    """
    best: tuple[float, T, P] | None = None
    for _ in range(max(1, max_tries)):
        proposal = propose()
        value, payload = score(proposal)
        if value >= min_score:
            return proposal, payload
        if best is None or value > best[0]:
            best = (value, proposal, payload)
    assert best is not None
    return best[1], best[2]
