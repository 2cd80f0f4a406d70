"""Reconstruct what is in view: the visible part of an image, with a checkpoint, off the Qt thread.

The visible box comes from the camera (:mod:`.viewport`), so a zoomed-in pyramid
reconstructs about what is on screen, not the chunks napari loaded. The model also gets its
overlap of context around the view (what ``cellvae reconstruct`` blends tiles with), so the
voxels at the view's edge are reconstructed as in a whole-image run; only the visible part is
shown. Loading, reading and the tiles run in a :class:`.workers.JobPanel` job: a progress bar
over the tiles and a cancel honoured between batches. 2D and 3D models: a 3D model in a 2D
view reconstructs a slab of its patch depth around the current plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError
from cellvae.napari.viewport import ViewRegion, view_region, visible_box

#: largest side (voxels) of the visible region reconstructed (CPU seconds, not minutes).
MAX_SIDE = 1024
#: the layer a reconstruction of the view is shown in
NAME = "reconstruction (in view)"


@dataclass
class ViewResult:
    """The visible crop of the image and its reconstruction (raw units), and where they are."""

    region: ViewRegion
    crop: np.ndarray
    recon: np.ndarray


def stats_of(layer) -> dict | None:
    """Stored intensity statistics of the OME-Zarr an image layer was read from, if any."""
    path = (layer.metadata or {}).get("path")
    if not path or Path(path).suffix.lower() in (".tif", ".tiff"):
        return None
    try:
        from cellvae.io.omezarr import open_image

        return open_image(path).stats
    except CellvaeError:
        return None


def reconstruct_region(job, ckpt, data, box, axes: str, stats) -> ViewResult:
    """Load ``ckpt``, read the region of ``data`` for the visible ``box`` and reconstruct it.

    ``data`` is the image at level 0 (lazy), ``box`` the visible ``(lo, hi)`` voxel bounds
    per axis, ``axes`` its storage axes. Runs in a worker; ``job`` (a
    :class:`.workers.Job`, or None) reports progress over the tiles and stops between
    batches when cancelled.
    """
    from cellvae.inference.field import overlap_for, receptive_radius
    from cellvae.inference.model import default_patch, load_model
    from cellvae.inference.windows import tile_starts

    vae, hparams = load_model(ckpt)
    spatial = [i for i, a in enumerate(axes) if a in "zyx"]
    if vae.ndim > len(spatial):
        raise CellvaeError(f"{ckpt}: a {vae.ndim}D model; the image in view is {len(spatial)}D")
    if vae.in_channels != 1:
        raise CellvaeError(f"{ckpt}: a {vae.in_channels}-channel model; the view has one")
    model_axes = spatial[-vae.ndim :]
    patch = default_patch(vae, hparams)
    radius = receptive_radius(vae, patch)
    overlap = overlap_for(radius, patch)
    lo, hi = box
    depth = {a: int(p) for a, p in zip(model_axes, patch) if hi[a] - lo[a] == 1 and vae.ndim == 3}
    region = view_region(lo, hi, data.shape, model_axes, depth, list(overlap), MAX_SIDE)
    if job is not None:
        job.progress(0.05)
    source = np.asarray(data[region.read], np.float32)
    total = int(
        np.prod([len(tile_starts(n, t, o)) for n, t, o in zip(source.shape, patch, overlap)])
    )
    done = [0]

    def counted(predict):
        def run(tiles: np.ndarray) -> list[np.ndarray]:
            if job is not None:
                job.check()
            out = predict(tiles)
            done[0] += len(tiles)
            if job is not None:
                job.progress(0.05 + 0.95 * min(1.0, done[0] / max(total, 1)))
            return out

        return run

    out = reconstruct_array(vae, hparams, source, stats, wrap=counted)
    return ViewResult(region, source[region.inner], out[region.inner])


def level0(layer):
    """The full-resolution data of an image layer."""
    return layer.data[0] if layer.multiscale else layer.data


def start(viewer, layer, ckpt: str, jobs, on_done) -> None:
    """Reconstruct what ``viewer`` shows of image ``layer`` with ``ckpt`` in ``jobs``.

    The visible box is read from the camera now (Qt thread, no pixels); ``on_done(result)``
    gets the :class:`ViewResult` on the Qt thread.
    """
    if not ckpt:
        raise CellvaeError("choose a checkpoint (.ckpt written by cellvae fit)")
    data = level0(layer)
    axes = (layer.metadata or {}).get("axes") or "zyx"[-data.ndim :]
    box = visible_box(viewer, layer)
    jobs.run(
        reconstruct_region,
        ckpt,
        data,
        box,
        axes,
        stats_of(layer),
        on_done=on_done,
        label="reconstructing the view",
    )


def show(viewer, layer, result: ViewResult):
    """Show the reconstruction on ``layer``'s grid, over it (the layer is reused).

    Only the reconstruction becomes a layer: the crop is what ``layer`` already shows (it
    stays in ``result`` for whoever compares the two, e.g. a blur map), and each new layer
    costs napari about 100 ms of the Qt thread to insert and paint.
    """
    keep = [i for i, r in enumerate(result.region.read) if isinstance(r, slice)]
    axes = (layer.metadata or {}).get("axes")
    kept = "".join(axes[i] for i in keep) if axes and len(axes) == layer.ndim else None
    grid = {
        "scale": [layer.scale[i] for i in keep],
        "translate": [
            layer.translate[i] + o * layer.scale[i] for i, o in zip(keep, result.region.origin)
        ],
    }
    return _put(
        viewer,
        NAME,
        result.recon,
        grid,
        colormap="green",
        blending="additive",
        contrast_limits=tuple(layer.contrast_limits),
        metadata={"axes": kept} if kept else {},
    )


def _put(viewer, name: str, data: np.ndarray, grid: dict, **look):
    """Layer ``name`` showing ``data`` on ``grid``: the existing one updated, else a new one."""
    from cellvae.napari.layer_choice import add_beside

    if name in viewer.layers:
        out = viewer.layers[name]
        out.data, out.scale, out.translate = data, grid["scale"], grid["translate"]
        return out
    return add_beside(viewer, data, name=name, **grid, **look)


def reconstruct_array(vae, hparams: dict, source: np.ndarray, stats: dict | None, wrap=None):
    """Reconstruct the whole array ``source`` (raw units) with a loaded model, as ``cellvae
    reconstruct`` would: overlapping tiles of the model's patch, blended with the overlap its
    receptive field asks for, intensities mapped by the image's ``stats`` (else the array's
    own percentiles). ``wrap(predict)`` may wrap the per-batch predictor (progress, cancel)."""
    from cellvae.inference.field import margin_for, overlap_for, receptive_radius
    from cellvae.inference.model import Reconstructor, default_patch, quantizers_for
    from cellvae.inference.reconstruct import default_batch
    from cellvae.inference.tiling import tile_reconstruct

    patch = default_patch(vae, hparams)
    radius = receptive_radius(vae, patch)
    overlap = overlap_for(radius, patch)
    quantizers = quantizers_for(stats, 1, int(hparams.get("bits", 8)), lambda c: source)
    predict = Reconstructor(vae, quantizers)
    out = np.zeros(source.shape, np.float32)
    tile_reconstruct(
        source,
        [out],
        wrap(predict) if wrap is not None else predict,
        "zyx"[-source.ndim :],
        vae.ndim,
        patch,
        overlap,
        block=source.shape,
        batch_size=default_batch(tuple(patch)),
        progress=False,
        margin=margin_for(radius, overlap),
    )
    return out
