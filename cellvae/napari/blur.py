"""The blur inspector's logic: a blur map computed band by band (for progress) and the FRC.

:func:`blur_map_bands` gives the same map as :func:`cellvae.metrics.sharpness.blur_map` on
the whole image, but in bands along the first analysed axis, yielding after each band, so a
napari ``thread_worker`` can report progress and the interface never waits for the whole
image. Each band is read with a halo of at least one window, so every window sees exactly the
pixels it sees in the whole-image computation (mirroring happens only at the image's edges).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from cellvae.errors import CellvaeError
from cellvae.metrics.sharpness import BlurMap, FRCResult, blur_map, frc

#: largest FRC region edge per analysed ndim (a central crop bounds the transform's memory).
FRC_MAX_EDGE = {2: 1024, 3: 128}


@dataclass
class BlurReport:
    """What the inspector shows: the map, its worst regions and the FRC of a central crop."""

    map: BlurMap
    worst: list[dict]
    frc: FRCResult


def blur_map_bands(
    original,
    recon,
    window: int = 32,
    stride: int | None = None,
    cutoff: float = 0.25,
    ndim: int | None = None,
    bands: int = 8,
) -> Generator[tuple[int, int], None, BlurMap]:
    """Yield ``(done, total)`` after each band; return the whole :class:`BlurMap`.

    Arguments are those of :func:`cellvae.metrics.sharpness.blur_map`; ``bands`` is how many
    pieces the first analysed axis is cut into (fewer if the map is shorter).
    """
    shape = tuple(int(s) for s in original.shape)
    if tuple(recon.shape) != shape:
        raise CellvaeError(
            f"the reconstruction's shape {tuple(recon.shape)} differs from the original's {shape}"
        )
    ndim = min(len(shape), 3) if ndim is None else ndim
    if len(shape) < 2 or ndim > len(shape):
        raise CellvaeError(f"images of shape {shape} have fewer than {ndim} axes")
    stride = window // 2 if stride is None else stride
    if window > min(shape[-ndim:]):
        raise CellvaeError(f"window {window} px is larger than the image {shape[-ndim:]}")
    axis = len(shape) - ndim
    rows = -(-shape[axis] // stride)
    halo = -(-window // stride) * stride
    edges = np.unique(np.linspace(0, rows, min(bands, rows) + 1).astype(int))
    parts: list[BlurMap] = []
    for i, (r0, r1) in enumerate(itertools.pairwise(edges)):
        start = max(r0 * stride - halo, 0)
        stop = min(r1 * stride + halo, shape[axis])
        index = (slice(None),) * axis + (slice(start, stop),)
        band = blur_map(
            np.asarray(original[index]), np.asarray(recon[index]), window, stride, cutoff, ndim
        )
        keep = (slice(None),) * axis + (slice(r0 - start // stride, r1 - start // stride),)
        parts.append(
            BlurMap(
                band.ratio[keep],
                band.original_power[keep],
                band.recon_power[keep],
                window,
                stride,
                cutoff,
                shape,
                ndim,
            )
        )
        yield i + 1, len(edges) - 1
    joined = [
        np.concatenate([getattr(p, k) for p in parts], axis=axis)
        for k in ("ratio", "original_power", "recon_power")
    ]
    return BlurMap(*joined, window, stride, cutoff, shape, ndim)


def central_frc(original, recon, ndim: int) -> FRCResult:
    """FRC/FSC of a central crop of the analysed axes (first index of any leading axis)."""
    lead = len(original.shape) - ndim
    index: list = [0] * lead
    for n in original.shape[lead:]:
        edge = min(n, FRC_MAX_EDGE[ndim])
        index.append(slice((n - edge) // 2, (n - edge) // 2 + edge))
    return frc(np.asarray(original[tuple(index)], float), np.asarray(recon[tuple(index)], float))


def inspect(
    original, recon, window: int = 32, cutoff: float = 0.25, top: int = 5, bands: int = 8
) -> Generator[tuple[int, int], None, BlurReport]:
    """The whole inspection as a generator: progress while mapping, then a :class:`BlurReport`."""
    ndim = 3 if original.ndim >= 3 and min(original.shape[-3:]) >= window else 2
    bmap = yield from blur_map_bands(original, recon, window, None, cutoff, ndim, bands)
    return BlurReport(bmap, bmap.worst_regions(top), central_frc(original, recon, ndim))


def overlay_geometry(
    bmap: BlurMap, scale: list[float], translate: list[float]
) -> tuple[list[float], list[float]]:
    """Scale and translation of the map layer over an image layer with ``scale``/``translate``.

    Map pixel ``g`` is the window centred on image pixel ``g * stride + (stride - 1) / 2``
    (pixel-centre coordinates) along each analysed axis.
    """
    lead = len(bmap.shape) - bmap.ndim
    s = bmap.stride
    new_scale = [v * (s if i >= lead else 1) for i, v in enumerate(scale)]
    new_translate = [
        t + (v * (s - 1) / 2 if i >= lead else 0) for i, (v, t) in enumerate(zip(scale, translate))
    ]
    return new_scale, new_translate


def region_centre(region: dict, ndim: int) -> np.ndarray:
    """A worst region's centre in pixel-centre data coordinates of the image.

    ``region["centre"]`` counts pixel edges along the ``ndim`` analysed axes (pixel ``i``
    spans ``[i, i + 1)``); napari places pixel ``i``'s centre at ``i``.
    """
    centre = np.asarray(region["centre"], float)
    centre[-ndim:] -= 0.5
    return centre


#: largest side (px) of the region reconstructed from the view (CPU seconds, not minutes).
VIEW_MAX_SIDE = 512


def view_region(
    shape: tuple[int, ...], corners: np.ndarray, point: np.ndarray, ndim: int
) -> tuple[slice | int, ...]:
    """The index of the visible region of an image for an ``ndim``-D model.

    ``corners`` ``(2, N)`` are napari's ``corner_pixels`` (visible data indices per axis),
    ``point`` the current data position. The last two axes span the visible area (at most
    ``VIEW_MAX_SIDE`` around its centre); for a 3D model the axis before them spans the
    depth (at most ``VIEW_MAX_SIDE`` around ``point``); other axes are indexed at ``point``.
    """
    index: list[slice | int] = []
    first = len(shape) - ndim
    for axis, n in enumerate(shape):
        here = int(np.clip(round(float(point[axis])), 0, n - 1))
        if axis < first:
            index.append(here)
            continue
        if axis >= len(shape) - 2:
            lo, hi = int(max(corners[0][axis], 0)), int(min(corners[1][axis] + 1, n))
        else:
            lo, hi = 0, n
        if hi - lo > VIEW_MAX_SIDE:
            mid = lo + (hi - lo) // 2 if axis >= len(shape) - 2 else here
            lo = max(0, min(mid - VIEW_MAX_SIDE // 2, n - VIEW_MAX_SIDE))
            hi = lo + VIEW_MAX_SIDE
        index.append(slice(lo, max(hi, lo + 1)))
    return tuple(index)


def reconstruct_crop(ckpt, crop: np.ndarray, stats: dict | None = None) -> np.ndarray:
    """Reconstruct ``crop`` (``(Y, X)`` or ``(Z, Y, X)``, raw units) with a checkpoint.

    Uses the inference engine (overlapping tiles of the model's patch, blended), the
    intensity mapping of the image's stored ``stats`` when given (else the crop's own
    percentiles). A model of another dimensionality or with several channels is refused.
    """
    from cellvae.inference.model import (
        Reconstructor,
        default_patch,
        load_model,
        quantizers_for,
    )
    from cellvae.inference.reconstruct import default_overlap
    from cellvae.inference.tiling import tile_reconstruct

    vae, hparams = load_model(ckpt)
    if vae.ndim != crop.ndim:
        raise CellvaeError(
            f"{ckpt}: a {vae.ndim}D model; the region in view is {crop.ndim}D: "
            f"choose a {crop.ndim}D checkpoint"
        )
    if vae.in_channels != 1:
        raise CellvaeError(f"{ckpt}: a {vae.in_channels}-channel model; the view has one")
    patch = default_patch(vae, hparams)
    source = np.asarray(crop, np.float32)
    quantizers = quantizers_for(stats, 1, int(hparams.get("bits", 8)), lambda c: source)
    out = np.zeros(source.shape, np.float32)
    tile_reconstruct(
        source,
        [out],
        Reconstructor(vae, quantizers),
        "zyx"[-source.ndim :],
        vae.ndim,
        patch,
        default_overlap(patch),
        block=source.shape,
        progress=False,
    )
    return out
