"""Correlation dimension of a point cloud (Grassberger & Procaccia, 1983).

The correlation sum ``C(r)`` is the fraction of point pairs closer than ``r``. On a set of
dimension ``D`` it scales as ``C(r) ~ r**D`` for ``r`` between the noise/sampling floor and
the size of the set, so ``D`` is the slope of ``log C`` against ``log r`` there. Points of a
trajectory that are close in time are close in space for a trivial reason; a Theiler window
``w`` leaves out every pair less than ``w`` samples apart.

Pairwise distances are computed in row blocks (memory ``block x N``) and binned on a fixed
logarithmic grid of radii, so up to ~20 000 points take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from cellvae.errors import ConfigError, check_range

#: rows of the distance matrix computed at once.
_BLOCK_ROWS = 512


@dataclass
class CorrDimResult:
    """Correlation dimension with the curve it was fitted on.

    Attributes
    ----------
    dimension : slope of ``log C`` against ``log r`` over ``fit_range``.
    log_r, log_c : natural logs of the radii and correlation sums (radii where ``C > 0``).
    fit_range : ``(r_min, r_max)`` of the radii used in the fit (same units as the points).
    n_points : points used (after subsampling); ``n_pairs``: pairs counted (after the
        Theiler window); ``theiler``: the window in samples.
    """

    dimension: float
    log_r: np.ndarray
    log_c: np.ndarray
    fit_range: tuple[float, float]
    n_points: int
    n_pairs: int
    theiler: int

    def to_dict(self) -> dict:
        """Plain floats and lists, for JSON."""
        return {
            "dimension": self.dimension,
            "fit_range": list(self.fit_range),
            "n_points": self.n_points,
            "n_pairs": self.n_pairs,
            "theiler": self.theiler,
            "log_r": self.log_r.tolist(),
            "log_c": self.log_c.tolist(),
        }


def correlation_sum(
    points: np.ndarray,
    radii: np.ndarray,
    theiler: int = 0,
    times: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Fraction of pairs closer than each radius, and the number of pairs counted.

    Pairs ``(i, j)`` with ``|times[i] - times[j]| <= theiler`` are left out (``times``
    defaults to the row index). ``radii`` must be increasing.
    """
    points = np.asarray(points, dtype=np.float64)
    times = np.arange(len(points)) if times is None else np.asarray(times)
    counts = np.zeros(len(radii) + 1, dtype=np.int64)
    n_pairs = 0
    for start in range(0, len(points), _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, len(points)))
        dist = cdist(points[rows], points[start:])
        # upper triangle only, and not within the Theiler window
        i = np.arange(rows.start, rows.stop)[:, None]
        j = np.arange(start, len(points))[None, :]
        keep = (j > i) & (np.abs(times[j] - times[i]) > theiler)
        d = dist[keep]
        n_pairs += d.size
        counts += np.bincount(np.searchsorted(radii, d, side="right"), minlength=len(counts))
    # counts[k] holds pairs with radii[k-1] <= d < radii[k]; C(radii[k]) sums counts[:k+1]
    cumulative = np.cumsum(counts)[:-1]
    return cumulative / max(n_pairs, 1), n_pairs


def correlation_dimension(
    points: np.ndarray,
    r_range: tuple[float, float] | None = None,
    theiler: int = 0,
    max_points: int = 5000,
    seed: int = 0,
    c_range: tuple[float, float] = (1e-4, 1e-2),
    min_pairs: int = 100,
    n_radii: int = 64,
) -> CorrDimResult:
    """Grassberger–Procaccia correlation dimension of ``points`` ``(N, D)``.

    Parameters
    ----------
    points : ``(N, D)`` samples, in time order when ``theiler > 0``.
    r_range : radii ``(r_min, r_max)`` to fit over; default: where ``C(r)`` lies in
        ``c_range`` and at least ``min_pairs`` pairs are closer than ``r`` (small radii are
        counted too sparsely; large ones feel the edges and the size of the set).
    theiler : leave out pairs at most this many samples apart (in the original index).
    max_points : random subsample size (the time index is kept for the Theiler window).
    seed : seed of the subsample.
    n_radii : log-spaced radii from ``1e-4`` times to the full extent of the cloud.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) < 10:
        raise ConfigError(f"points: need an (N, D) array with N >= 10, got shape {points.shape}")
    check_range("theiler", theiler, low=0)
    check_range("max_points", max_points, low=10)
    times = np.arange(len(points))
    if len(points) > max_points:
        times = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
    sample = points[times]
    extent = float(np.linalg.norm(sample.max(axis=0) - sample.min(axis=0)))
    radii = np.geomspace(extent * 1e-4, extent, n_radii)
    c, n_pairs = correlation_sum(sample, radii, theiler, times)
    if n_pairs == 0:
        raise ConfigError("theiler: the window leaves no pairs; make it smaller")
    if r_range is None:
        low = max(c_range[0], min_pairs / n_pairs)
        in_fit = (c >= low) & (c <= c_range[1])
    else:
        in_fit = (radii >= r_range[0]) & (radii <= r_range[1]) & (c > 0)
    if in_fit.sum() < 3:
        raise ConfigError(
            "r_range: fewer than 3 radii to fit over; use more points or a wider range"
        )
    positive = c > 0
    log_r, log_c = np.log(radii), np.log(np.where(positive, c, 1.0))
    slope = np.polyfit(log_r[in_fit], log_c[in_fit], 1)[0]
    fit = radii[in_fit]
    return CorrDimResult(
        dimension=float(slope),
        log_r=log_r[positive],
        log_c=log_c[positive],
        fit_range=(float(fit[0]), float(fit[-1])),
        n_points=len(sample),
        n_pairs=int(n_pairs),
        theiler=int(theiler),
    )
