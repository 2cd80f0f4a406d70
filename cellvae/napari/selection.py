"""The latent browser's logic on plain arrays: selections, density images, highlights, crops.

Everything here is vectorised numpy (and ``matplotlib.path`` for lassos), so a selection
among a million points and the label highlight it drives take milliseconds, not seconds.
Points are ``(N, 2)`` float arrays ``xy`` in the plot's data units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def in_box(xy: np.ndarray, corner_a: Sequence[float], corner_b: Sequence[float]) -> np.ndarray:
    """Boolean mask ``(N,)`` of the points inside the box spanned by two corners."""
    lo, hi = np.minimum(corner_a, corner_b), np.maximum(corner_a, corner_b)
    return (xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1])


def _raster_states(vertices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cells of a grid (polygon in cell units, cell ``i`` spans ``[i, i + 1)``) marked 0
    outside, 1 inside, 2 near the outline (decided point by point)."""
    from scipy.ndimage import binary_dilation
    from skimage.draw import polygon, polygon_perimeter

    vx, vy = vertices.T
    fill = np.zeros(shape, bool)
    fill[polygon(vy - 0.5, vx - 0.5, shape)] = True  # cell centres inside the polygon
    edge = np.zeros(shape, bool)
    edge[polygon_perimeter(np.floor(vy), np.floor(vx), shape, clip=True)] = True
    edge = binary_dilation(edge, iterations=2)
    return np.where(edge, 2, fill).astype(np.uint8)


def in_lasso(
    xy: np.ndarray, vertices: np.ndarray, grid: DensityGrid | None = None, raster: int = 256
) -> np.ndarray:
    """Boolean mask ``(N,)`` of the points inside the closed polygon ``vertices`` ``(V, 2)``.

    The polygon is rasterised: points in cells well inside or outside it are decided by one
    lookup, and only points in cells along the outline go through the exact point-in-polygon
    test (``matplotlib.path``). With ``grid`` (the points already binned for the density
    image) the lookup is one gather over its bins; without, a ``raster x raster`` grid over
    the polygon's bounding box is used for the points inside that box.
    """
    from matplotlib.path import Path

    vertices = np.asarray(vertices, float)
    mask = np.zeros(len(xy), bool)
    if len(vertices) < 3:
        return mask
    if grid is not None:
        x0, x1, y0, y1 = grid.extent
        cell = np.array([(x1 - x0) / grid.bins, (y1 - y0) / grid.bins])
        states = _raster_states((vertices - (x0, y0)) / cell, (grid.bins, grid.bins))
        state = states.ravel()[grid.flat]
        mask[state == 1] = True
        exact = np.flatnonzero(state == 2)
    else:
        lo, hi = vertices.min(0), vertices.max(0)
        candidates = np.flatnonzero(in_box(xy, lo, hi))
        if not candidates.size:
            return mask
        span = np.where(hi > lo, hi - lo, 1.0) / raster
        states = _raster_states((vertices - lo) / span, (raster + 1, raster + 1))
        cell = np.clip(((xy[candidates] - lo) / span).astype(np.int64), 0, raster)
        state = states[cell[:, 1], cell[:, 0]]
        mask[candidates[state == 1]] = True
        exact = candidates[state == 2]
    if exact.size:
        mask[exact] = Path(vertices).contains_points(xy[exact])
    return mask


def nearest(xy: np.ndarray, point: Sequence[float], radius: float) -> int | None:
    """Index of the point nearest to ``point`` within ``radius`` (data units), or None."""
    if not len(xy):
        return None
    d2 = ((xy - np.asarray(point, float)) ** 2).sum(1)
    i = int(np.argmin(d2))
    return i if d2[i] <= radius**2 else None


@dataclass
class DensityGrid:
    """Points binned once onto a ``bins x bins`` grid, so density images are one bincount.

    ``flat`` ``(N,)`` is each point's bin (row-major over ``(y, x)``); ``extent`` is
    ``(x0, x1, y0, y1)`` in data units.
    """

    flat: np.ndarray
    bins: int
    extent: tuple[float, float, float, float]

    @classmethod
    def of(cls, xy: np.ndarray, bins: int = 256) -> DensityGrid:
        """Bin ``xy`` ``(N, 2)`` on a grid spanning its finite range."""
        finite = np.isfinite(xy).all(1)
        lo = xy[finite].min(0) if finite.any() else np.zeros(2)
        hi = xy[finite].max(0) if finite.any() else np.ones(2)
        span = np.where(hi > lo, hi - lo, 1.0)
        cell = np.clip(((xy - lo) / span * bins).astype(np.int64), 0, bins - 1)
        flat = np.where(finite, cell[:, 1] * bins + cell[:, 0], 0)
        return cls(flat, bins, (lo[0], lo[0] + span[0], lo[1], lo[1] + span[1]))

    def counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Points per bin ``(bins, bins)`` (rows = y), of all points or of ``mask`` only."""
        flat = self.flat if mask is None else self.flat[mask]
        return np.bincount(flat, minlength=self.bins**2).reshape(self.bins, self.bins)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of ``values`` ``(N,)`` per bin (NaN where empty): colour by a column."""
        total = np.bincount(self.flat, weights=values, minlength=self.bins**2)
        n = np.bincount(self.flat, minlength=self.bins**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / n).reshape(self.bins, self.bins)


def log_density(counts: np.ndarray) -> np.ndarray:
    """``log1p(counts)`` scaled to [0, 1]: a density image that shows sparse and dense parts."""
    image = np.log1p(counts.astype(np.float32))
    top = image.max()
    return image / top if top > 0 else image


def selection_lut(label_ids: np.ndarray, mask: np.ndarray, size: int = 0) -> np.ndarray:
    """Lookup table ``lut[label] -> 1`` for the selected rows' label ids, else 0 (uint8).

    ``size`` (e.g. the label image's maximum + 1) lengthens the table so that every label of
    the image indexes it directly.
    """
    top = int(label_ids.max()) if len(label_ids) else 0
    lut = np.zeros(max(top + 1, size), np.uint8)
    lut[label_ids[mask]] = 1
    return lut


def apply_lut(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[labels]`` with ids beyond the table mapped to 0: the highlight of a label block."""
    labels = np.asarray(labels)
    if labels.size and labels.max() < len(lut) and labels.min() >= 0:
        return lut[labels]
    inside = labels < len(lut)
    return np.where(inside, lut[np.where(inside, labels, 0)], 0).astype(np.uint8)


def highlight(labels, lut: np.ndarray):
    """The selected cells of ``labels`` as a 0/1 uint8 image, lazily for dask arrays.

    A numpy label image is mapped at once; a dask one (a large or on-disk image) per chunk
    when napari reads the visible slice, so the cost does not grow with the image.
    """
    if isinstance(labels, np.ndarray):
        return apply_lut(labels, lut)
    return labels.map_blocks(apply_lut, lut, dtype=np.uint8)


def rows_of_labels(label_ids: np.ndarray, picked: Sequence[int]) -> np.ndarray:
    """Boolean mask of the rows whose label id is one of ``picked``."""
    return np.isin(label_ids, np.asarray(list(picked), dtype=label_ids.dtype))


def centre_of(table, mask: np.ndarray, axes: str) -> np.ndarray | None:
    """Mean centroid (voxels, axes order) of the selected rows, or None if none or unknown."""
    columns = [f"centroid_{a}" for a in axes]
    if not mask.any() or any(c not in table for c in columns):
        return None
    return table.loc[mask, columns].to_numpy(float).mean(0)


def mirror_index(index: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into ``0 .. n - 1`` at the edges, as numpy's ``"reflect"`` padding
    (``-1 -> 1``, ``n -> n - 2``), however far outside they are."""
    index = np.asarray(index, np.int64)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def crop_plane(image, centre: Sequence[float], size: int) -> np.ndarray:
    """A ``size x size`` crop of the last two axes around ``centre``, mirrored at borders.

    A cell at the image's edge is shown whole on one side and reflected on the other, not
    smeared by repeating the edge row. Leading axes (z of a volume) are taken at the rounded
    centre. ``image`` may be lazy: only the bounding box of the pixels used is read.
    """
    centre = [round(float(c)) for c in centre]
    lead = tuple(min(max(c, 0), n - 1) for c, n in zip(centre[:-2], image.shape[:-2]))
    plane = image[lead] if lead else image
    out = []
    for c, n in zip(centre[-2:], plane.shape[-2:]):
        out.append(mirror_index(np.arange(c - size // 2, c - size // 2 + size), n))
    box = tuple(slice(int(o.min()), int(o.max()) + 1) for o in out)
    region = np.asarray(plane[box], dtype=np.float32)
    return region[np.ix_(out[0] - out[0].min(), out[1] - out[1].min())]


def to_uint8(image: np.ndarray, limits: Sequence[float]) -> np.ndarray:
    """An image scaled to 0..255 between ``limits`` (clipped): for gallery thumbnails."""
    lo, hi = float(limits[0]), float(limits[1])
    scaled = (np.asarray(image, np.float32) - lo) / (hi - lo if hi > lo else 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
