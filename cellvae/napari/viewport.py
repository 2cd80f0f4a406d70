"""What the viewer shows of a layer, from the camera: centre, zoom and canvas size.

napari's ``corner_pixels`` is widened to whole chunks for multiscale layers (it says what to
load, not what is seen), so on a zoomed-in pyramid it can span the whole image. Here the
visible world rectangle is computed from the camera and mapped through the layer's own
transform to voxel indices of level 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from cellvae.napari.navigate import camera_of


def canvas_size(viewer) -> tuple[int, int] | None:
    """``(height, width)`` of the viewer's canvas in screen pixels, or None without a window.

    napari keeps the size on its Qt canvas only (no public attribute of the model).
    """
    raw = getattr(viewer, "__wrapped__", viewer)
    try:
        height, width = raw.window._qt_viewer.canvas.size
    except (AttributeError, TypeError, ValueError):
        return None
    return int(height), int(width)


def visible_world(
    centre: np.ndarray, zoom: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The world rectangle ``(lo, hi)`` over the two displayed axes that a canvas of ``size``
    screen pixels ``(height, width)`` shows around ``centre`` at ``zoom`` pixels per unit."""
    half = np.asarray(size, float) / 2 / float(zoom)
    centre = np.asarray(centre, float)[-2:]
    return centre - half, centre + half


def visible_box(viewer, layer) -> tuple[np.ndarray, np.ndarray]:
    """Voxel index bounds ``[lo, hi)`` per axis of ``layer`` (level 0) of what is on screen.

    Displayed axes span the visible part of the canvas (the whole axis in a 3D view or
    without a canvas); the other axes are the current slice, one voxel wide.
    """
    shape = np.asarray(layer.level_shapes[0] if layer.multiscale else layer.data.shape, int)
    ndim = len(shape)
    world_ndim = len(viewer.dims.point)
    offset = world_ndim - ndim  # the layer's axes are the viewer's last ones
    point = np.asarray(layer.world_to_data(np.asarray(viewer.dims.point, float)), float)
    lo = np.clip(np.floor(point + 0.5), 0, shape - 1).astype(int)
    hi = lo + 1
    displayed = [a - offset for a in viewer.dims.displayed if a >= offset]
    size = canvas_size(viewer)
    if len(viewer.dims.displayed) != 2 or size is None:
        for a in displayed:
            lo[a], hi[a] = 0, shape[a]
        return lo, hi
    camera = camera_of(viewer)
    w_lo, w_hi = visible_world(np.asarray(camera.center)[-2:], camera.zoom, size)
    axes = list(viewer.dims.displayed)
    corners = []
    for corner in itertools.product(*zip(w_lo, w_hi)):
        world = np.asarray(viewer.dims.point, float).copy()
        world[axes] = corner
        corners.append(np.asarray(layer.world_to_data(world), float))
    corners = np.stack(corners)
    for a in displayed:
        # voxel i covers [i - 0.5, i + 0.5): the voxels the rectangle touches
        lo[a] = max(0, int(np.floor(corners[:, a].min() + 0.5)))
        hi[a] = min(int(shape[a]), int(np.floor(corners[:, a].max() + 0.5)) + 1)
        hi[a] = max(hi[a], lo[a] + 1)
    return lo, hi


@dataclass
class ViewRegion:
    """What to reconstruct: ``read`` indexes the image (ints for axes outside the model),
    ``inner`` the visible part of the read crop (the rest is context for the model)."""

    read: tuple[slice | int, ...]
    inner: tuple[slice, ...]

    @property
    def origin(self) -> list[int]:
        """Voxel index of the visible part's first voxel, per axis kept in the crop."""
        return [r.start + i.start for r, i in zip(self.spatial(), self.inner)]

    def spatial(self) -> list[slice]:
        """The slices of ``read`` (the axes the crop keeps)."""
        return [r for r in self.read if isinstance(r, slice)]


def view_region(
    lo: np.ndarray,
    hi: np.ndarray,
    shape: tuple[int, ...],
    model_axes: list[int],
    depth: dict[int, int],
    margin: list[int],
    max_side: int,
) -> ViewRegion:
    """The region to reconstruct for the visible box ``[lo, hi)`` of an image of ``shape``.

    ``model_axes`` are the image axes the model sees (its spatial axes, in order); axes
    outside it are indexed at ``lo``. A model axis in ``depth`` (not displayed, e.g. z of a
    3D model in a 2D view) spans that many voxels around ``lo``. Each model axis is widened
    by its ``margin`` (the model's overlap: context for the voxels at the view's edge) and
    capped at ``max_side`` voxels around the visible centre.
    """
    read: list[slice | int] = []
    inner: list[slice] = []
    for axis, n in enumerate(shape):
        if axis not in model_axes:
            read.append(int(lo[axis]))
            continue
        k = model_axes.index(axis)
        a, b = int(lo[axis]), int(hi[axis])
        if axis in depth:
            a = max(0, min(a - depth[axis] // 2, n - depth[axis]))
            b = min(n, a + depth[axis])
        if b - a > max_side:
            middle = (a + b) // 2
            a, b = middle - max_side // 2, middle - max_side // 2 + max_side
        start, stop = max(0, a - margin[k]), min(n, b + margin[k])
        read.append(slice(start, stop))
        inner.append(slice(a - start, b - start))
    return ViewRegion(tuple(read), tuple(inner))
