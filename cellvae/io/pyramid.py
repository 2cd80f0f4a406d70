"""Plan and compute the levels of a multiscale pyramid."""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np

#: stop adding levels once the smaller of y, x falls below this many pixels
MIN_SIDE = 64
MAX_LEVELS = 12


def plan_pyramid(
    shape: tuple[int, ...],
    axes: str,
    voxel_size: dict[str, float],
    n_levels: int | None = None,
    min_side: int = MIN_SIDE,
) -> list[dict[str, int]]:
    """Downsampling factors from each level to the next (one dict per level after the first).

    y and x are halved every level; z is halved too while its voxel size is at most 1.5x
    that of y, x (so anisotropic stacks first become isotropic). Without ``n_levels`` levels
    are added while the smaller of y, x is at least ``min_side``; no axis drops below 1.
    """
    size = dict(zip(axes, shape))
    spacing = {a: voxel_size.get(a, 1.0) for a in "zyx" if a in axes}
    steps: list[dict[str, int]] = []
    while len(steps) + 1 < (n_levels or MAX_LEVELS):
        side = min(size["y"], size["x"])
        if side < 2 or (n_levels is None and side < min_side):
            break
        step = {"y": 2, "x": 2}
        if "z" in size and size["z"] >= 2 and spacing["z"] <= 1.5 * max(spacing["y"], spacing["x"]):
            step["z"] = 2
        for a, f in step.items():
            size[a] //= f
            spacing[a] *= f
        steps.append(step)
    return steps


def downsample(
    data: da.Array, axes: str, step: dict[str, int], method: Literal["mean", "nearest"] = "mean"
) -> da.Array:
    """Reduce ``data`` by integer ``step`` factors per axis; odd remainders are dropped.

    ``"mean"`` averages blocks (rounded back to integer dtypes); ``"nearest"`` keeps every
    ``step``-th voxel, which preserves label values.
    """
    factors = {i: step.get(a, 1) for i, a in enumerate(axes)}
    if method == "nearest":
        return data[tuple(slice(None, None, f) for f in factors.values())][
            tuple(slice(0, s // f) for s, f in zip(data.shape, factors.values()))
        ]
    trimmed = data[tuple(slice(0, (s // f) * f) for s, f in zip(data.shape, factors.values()))]
    aligned = tuple(max(f, (c // f) * f) for c, f in zip(trimmed.chunksize, factors.values()))
    mean = da.coarsen(np.mean, trimmed.rechunk(aligned), factors, trim_excess=True)
    if np.dtype(data.dtype).kind in "ui":
        info = np.iinfo(data.dtype)
        mean = da.clip(da.round(mean), info.min, info.max)
    return mean.astype(data.dtype)
