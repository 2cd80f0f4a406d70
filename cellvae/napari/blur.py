"""The blur inspector's logic: the noise-aware blur map with read progress, its figures as
text, the stored ``blur.json``, overlay geometry.

:func:`inspect` computes exactly what ``cellvae blur`` computes (the camera model from the
original's metadata or a fit, then :func:`cellvae.metrics.structure.structure_map` on the whole
image and the figures of :mod:`cellvae.metrics.blur_summary`), while :class:`ReadProgress`
reports how far the map's block-by-block reads have got through the original, so a napari
worker can drive a progress bar and the interface never waits for the whole image.
:func:`summary_lines` and :func:`region_label` turn a summary (computed, or the ``blur.json``
stored with a results folder) into what the widget shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError
from cellvae.metrics.blur_summary import blur_figures
from cellvae.metrics.noise import CameraModel, camera_model
from cellvae.metrics.sharpness import BlurMap, FRCResult, frc
from cellvae.metrics.structure import StructureMap, structure_map

#: largest FRC region edge per analysed ndim (a central crop bounds the transform's memory).
FRC_MAX_EDGE = {2: 1024, 3: 128}
#: what the map's colour means, for legends and the colourbar
MAP_MEANING = "share of the original's resolvable structure kept"
#: how the worst regions are ranked, shown above the list
RANKING = (
    "worst regions, ranked by 'kept': the share of the original's resolvable structure kept, "
    "lowest share first (1 = all kept, 0 = all lost; only windows whose signal stands clearly "
    "above noise); click one to go there"
)


@dataclass
class BlurReport:
    """What the inspector shows: the map, its worst regions, its figures (the keys of
    ``blur.json``), the camera model and the plain FRC of a central crop."""

    map: StructureMap
    worst: list[dict]
    frc: FRCResult
    figures: dict
    camera: CameraModel


class ReadProgress:
    """A read-only array view that calls ``report(fraction)`` as block reads advance.

    The fraction is how far the furthest block read so far reaches along the first of the
    ``ndim`` analysed axes (leading axes counted plane by plane); reads without an explicit
    start (whole-array or strided samples) do not count.
    """

    def __init__(self, array, ndim: int, report: Callable[[float], None]) -> None:
        self.array, self.report = array, report
        self.shape = tuple(int(s) for s in array.shape)
        self.ndim = len(self.shape)
        self.dtype = getattr(array, "dtype", None)
        self._lead = self.ndim - ndim
        self._done = 0.0

    def __getitem__(self, index):
        out = self.array[index]
        if isinstance(index, tuple) and len(index) == self.ndim:
            first = index[self._lead]
            lead = index[: self._lead]
            if (
                isinstance(first, slice)
                and first.start is not None
                and all(isinstance(i, int | np.integer) for i in lead)
            ):
                planes = int(np.prod(self.shape[: self._lead]))
                plane = int(np.ravel_multi_index(lead, self.shape[: self._lead])) if lead else 0
                fraction = (
                    plane + min(first.stop, self.shape[self._lead]) / self.shape[self._lead]
                ) / planes
                if fraction > self._done:
                    self._done = fraction
                    self.report(fraction)
        return out


def central_frc(original, recon, ndim: int) -> FRCResult:
    """FRC/FSC of a central crop of the analysed axes (first index of any leading axis)."""
    lead = len(original.shape) - ndim
    index: list = [0] * lead
    for n in original.shape[lead:]:
        edge = min(n, FRC_MAX_EDGE[ndim])
        index.append(slice((n - edge) // 2, (n - edge) // 2 + edge))
    return frc(np.asarray(original[tuple(index)], float), np.asarray(recon[tuple(index)], float))


def inspect(
    original,
    recon,
    window: int = 32,
    cutoff: float = 0.25,
    top: int = 5,
    on_progress: Callable[[float], None] | None = None,
    camera: dict | None = None,
) -> BlurReport:
    """Noise-aware blur map, worst regions, figures and FRC of ``recon`` against ``original``.

    ``camera`` holds the known ``gain``, ``offset``, ``read_noise`` (e.g. from
    :func:`cellvae.io.camera.read_camera`, with its ``source``); the rest is estimated from
    ``original``. Volumes at least ``window`` deep are analysed in 3D, others plane by plane.
    ``on_progress(fraction)`` is called as the map advances and with 1.0 at the end.
    """
    shape = tuple(int(s) for s in original.shape)
    if tuple(recon.shape) != shape:
        raise CellvaeError(
            f"the reconstruction's shape {tuple(recon.shape)} differs from the original's {shape}"
        )
    if len(shape) < 2:
        raise CellvaeError(f"an image of shape {shape} has fewer than 2 axes")
    ndim = 3 if len(shape) >= 3 and min(shape[-3:]) >= window else 2
    if window > min(shape[-ndim:]):
        raise CellvaeError(f"window {window} px is larger than the image {shape[-ndim:]}")
    report = on_progress or (lambda fraction: None)
    known = {k: v for k, v in (camera or {}).items() if k in ("gain", "offset", "read_noise")}
    sources = dict.fromkeys(known, "metadata")
    model = camera_model(original, ndim, sources=sources, **known)
    if camera and known:
        model.metadata_source = camera.get("source")
    bmap = structure_map(
        ReadProgress(original, ndim, report), recon, model.noise, None, window, None, cutoff, ndim
    )
    curve = central_frc(original, recon, ndim)
    report(1.0)
    figures = {**blur_figures(bmap), "camera": model.to_dict()}
    return BlurReport(bmap, bmap.worst_regions(top), curve, figures, model)


def stored_summary(folder: str | Path | None) -> dict | None:
    """The ``blur.json`` of a results folder, or None when there is none or it is unreadable."""
    if not folder:
        return None
    path = Path(folder) / "blur.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fixed(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def summary_lines(summary: dict) -> list[str]:
    """The figures of a blur summary as short lines: the share kept, the resolution pair, the
    camera and, for an old summary without them, its high-frequency ratio."""
    if "share_of_resolvable_structure_kept" not in summary:
        return [
            f"global HF power ratio {_fixed(summary.get('global_hf_ratio'), '.3f')} against "
            "the noisy original (an old summary: not noise-aware)"
        ]
    lines = [
        f"{MAP_MEANING}: {_fixed(summary['share_of_resolvable_structure_kept'])} "
        f"(1 = all kept; {summary.get('windows_with_signal', '?')} of "
        f"{summary.get('windows', '?')} windows have signal above noise)",
        str(summary.get("resolution_sentence", "")),
    ]
    camera = summary.get("camera") or {}
    if camera:
        sources = camera.get("sources") or {}
        lines.append(
            "camera: "
            + ", ".join(
                f"{name.replace('_', ' ')} {_fixed(camera.get(name), '.3g')} "
                f"({sources.get(name, 'unknown')})"
                for name in ("gain", "offset", "read_noise")
            )
        )
    truth = summary.get("truth")
    if truth:
        share = _fixed(truth.get("share_of_resolvable_structure_kept"))
        lines.append(
            f"against the truth: share kept {share}, "
            f"maps agree (Spearman) {_fixed(truth.get('map_spearman'))}"
        )
    return lines


def region_label(region: dict, centre: np.ndarray | None = None) -> str:
    """One worst region as a list entry: its ranking quantity first, then where it is."""
    where = ", ".join(f"{c:.0f}" for c in (region["centre"] if centre is None else centre))
    if "share_kept" in region:
        signal = region.get("signal_to_noise", float("nan"))
        return f"kept {region['share_kept']:.2f} (signal {signal:.0f}x noise) at ({where})"
    return f"HF ratio {region.get('hf_ratio', float('nan')):.2f} at ({where})"


def origin_px(bmap: StructureMap | BlurMap) -> float:
    """Image pixel index (pixel centres at integers) of the centre of map pixel 0."""
    return float(getattr(bmap, "origin_px", (bmap.stride - 1) / 2))


def overlay_geometry(
    bmap: StructureMap | BlurMap, scale: list[float], translate: list[float]
) -> tuple[list[float], list[float]]:
    """Scale and translation of the map layer over an image layer with ``scale``/``translate``.

    Map pixel ``g`` is the window centred on image pixel ``g * stride + origin_px`` along
    each analysed axis.
    """
    lead = len(bmap.shape) - bmap.ndim
    s, origin = bmap.stride, origin_px(bmap)
    new_scale = [v * (s if i >= lead else 1) for i, v in enumerate(scale)]
    new_translate = [
        t + (v * origin if i >= lead else 0) for i, (v, t) in enumerate(zip(scale, translate))
    ]
    return new_scale, new_translate


def region_centre(region: dict, bmap: StructureMap | BlurMap) -> np.ndarray:
    """A worst region's centre in pixel-centre data coordinates of the image (napari's)."""
    centre = np.asarray(region["centre"], float)
    if not hasattr(bmap, "origin_px"):  # this BlurMap counts centres in pixel edges
        centre[-bmap.ndim :] -= 0.5
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

    Uses the inference engine (overlapping tiles of the model's patch, blended, with the
    overlap ``cellvae reconstruct`` picks from the model's receptive field), the
    intensity mapping of the image's stored ``stats`` when given (else the crop's own
    percentiles). A model of another dimensionality or with several channels is refused.
    """
    from cellvae.inference.model import load_model
    from cellvae.napari.view_reconstruction import reconstruct_array

    vae, hparams = load_model(ckpt)
    if vae.ndim != crop.ndim:
        raise CellvaeError(
            f"{ckpt}: a {vae.ndim}D model; the region in view is {crop.ndim}D: "
            f"choose a {crop.ndim}D checkpoint"
        )
    if vae.in_channels != 1:
        raise CellvaeError(f"{ckpt}: a {vae.in_channels}-channel model; the view has one")
    return reconstruct_array(vae, hparams, np.asarray(crop, np.float32), stats)
