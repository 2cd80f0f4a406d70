"""Per-cell latent embeddings: one table row per labelled cell, ready for pandas and napari.

Cell geometry (centroid, bounding box, voxel count) is accumulated slab by slab over the label
image, so memory does not grow with the image. Each cell's crop (the model's patch, centred on
the rounded centroid, mirrored where it leaves the image) is read per batch; by default
everything but the cell is masked (set to the crop's background level), so the code describes
this cell and not its neighbours, unlabelled objects or its own mirror image at the border.
The crop is quantized and encoded; the posterior mean and log-variance become columns
``z_mean_i`` / ``z_logvar_i``, and the column ``neighbours`` says whether neighbours were
``masked`` or ``kept``. A hierarchical model also gives ``local_k``: the per-channel spatial
mean and standard deviation of each spatial latent group's posterior mean over the crop
(``VAE.local_summary``), the local latents' account of the cell's texture, extent and
brightness. The cell's description is both (:func:`cell_features`): the global code alone
leaves most of what the local latents carry out (docs/experiments.md, "The cell embedding").
``pca_0/1`` (and ``umap_0/1`` when umap-learn is installed) map that description to 2D. The
``index`` column holds the label id, which is how napari matches ``features`` rows to labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError
from cellvae.inference.crops import cell_crops
from cellvae.inference.model import device_of, to_input

#: Voxels of the label image read at once when measuring cells.
SLAB_VOXELS = 2**24


def check_label_dtype(dtype, source: str = "labels") -> None:
    """Refuse label images that cannot hold cell ids: bool masks, complex, text."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise CellvaeError(
            f"{source}: a bool mask, not cell labels; give one integer id per cell "
            "(e.g. skimage.measure.label(mask))"
        )
    if dtype.kind not in "uif":
        raise CellvaeError(f"{source}: labels must be integers, got {dtype}")


def _check_label_values(slab: np.ndarray, source: str) -> np.ndarray:
    """``slab`` as int64 ids; refuses NaN, fractional and negative values (one line)."""
    if slab.dtype.kind == "f":
        bad = ~np.isfinite(slab)
        if bad.any():
            raise CellvaeError(f"{source}: labels contain NaN or infinite values; ids must be >= 0")
        fractional = slab != np.round(slab)
        if fractional.any():
            raise CellvaeError(
                f"{source}: labels must be whole numbers, found {slab[fractional].flat[0].item()!r}"
            )
    if slab.dtype.kind in "if" and slab.size and slab.min() < 0:
        raise CellvaeError(f"{source}: negative label id {slab.min().item()!r}; ids must be >= 0")
    return slab.astype(np.int64, copy=False)


def measure_cells(labels, names: str, source: str = "labels") -> pd.DataFrame:
    """Label id, voxel count, centroid and bounding box of every label > 0.

    ``labels`` is a lazily indexable array over the spatial axes ``names`` (e.g. ``"zyx"``),
    read in slabs along its first axis; its values must be whole numbers >= 0 (float labels
    holding integers are accepted; NaN, fractions and negatives are refused naming
    ``source``). Columns: ``label``, ``size_voxels``, ``centroid_<a>`` (voxels),
    ``bbox_<a>_min`` / ``bbox_<a>_max`` (max exclusive).
    """
    check_label_dtype(labels.dtype, source)
    shape = labels.shape
    step = max(1, SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    parts = []
    for start in range(0, shape[0], step):
        slab = _check_label_values(np.asarray(labels[start : start + step]), source)
        coords = np.nonzero(slab)
        if not coords[0].size:
            continue
        frame = {"label": slab[coords].astype(np.int64)}
        for a, c, off in zip(names, coords, (start, *[0] * (len(names) - 1))):
            frame[a] = c.astype(np.int64) + off
        grouped = pd.DataFrame(frame).groupby("label")
        part = grouped.agg(
            **{"size_voxels": (names[0], "size")},
            **{
                f"{k}_{a}": (a, f)
                for a in names
                for k, f in (("sum", "sum"), ("min", "min"), ("max", "max"))
            },
        )
        parts.append(part)
    if not parts:
        raise CellvaeError(f"{source}: the label image is empty (no label > 0)")
    table = (
        pd.concat(parts)
        .groupby(level=0)
        .agg(
            {
                c: ("min" if c.startswith("min") else "max" if c.startswith("max") else "sum")
                for c in parts[0].columns
            }
        )
    )
    out = pd.DataFrame({"label": table.index.to_numpy(), "size_voxels": table["size_voxels"]})
    for a in names:
        out[f"centroid_{a}"] = table[f"sum_{a}"] / table["size_voxels"]
    for a in names:
        out[f"bbox_{a}_min"] = table[f"min_{a}"]
        out[f"bbox_{a}_max"] = table[f"max_{a}"] + 1
    return out.reset_index(drop=True)


@torch.no_grad()
def cell_embeddings(
    vae: torch.nn.Module,
    image,
    labels,
    names: str,
    quantizers: Sequence[Quantizer],
    patch: Sequence[int],
    batch_size: int = 64,
    progress: bool = True,
    source: str = "labels",
    neighbours: str = "masked",
) -> pd.DataFrame:
    """Geometry and latent posterior of every labelled cell, one row per cell.

    Parameters
    ----------
    vae : the model (eval mode) with ``embed(x) -> (mean, logvar)``, each ``(B, D)``.
    image : lazily indexable ``(C, *S)`` raw intensities.
    labels : lazily indexable ``S`` integer labels (same spatial shape as ``image``).
    names : spatial axis letters of ``S``, e.g. ``"yx"``.
    quantizers : one per channel, raw → model input.
    patch : crop shape (the model's patch).
    batch_size : cells encoded per forward pass (crops are read per batch).
    neighbours : ``masked`` (all but the cell set to the background level) or ``kept``.
    """
    from tqdm.auto import tqdm

    if tuple(labels.shape) != tuple(image.shape[1:]):
        raise CellvaeError(
            f"labels: shape {tuple(labels.shape)} differs from the image's {tuple(image.shape[1:])}"
        )
    table = measure_cells(labels, names, source)
    means, logvars, locals_ = [], [], []
    device = device_of(vae)
    summary = getattr(vae, "local_summary", None)
    for start in tqdm(
        range(0, len(table), batch_size), desc="embed", unit="batch", disable=not progress
    ):
        rows = table.iloc[start : start + batch_size]
        crops = cell_crops(image, labels, rows, names, patch, neighbours)
        x = torch.from_numpy(to_input(crops.astype(np.float32), quantizers)).to(device)
        mean, logvar = vae.embed(x)
        means.append(mean.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
        if summary is not None:
            locals_.append(summary(x).float().cpu().numpy())
    mean, logvar = np.concatenate(means), np.concatenate(logvars)
    table.insert(0, "index", table["label"])
    table["neighbours"] = neighbours
    latent = {f"z_mean_{i}": mean[:, i] for i in range(mean.shape[1])}
    latent |= {f"z_logvar_{i}": logvar[:, i] for i in range(logvar.shape[1])}
    local = np.concatenate(locals_) if locals_ else np.zeros((len(mean), 0))
    latent |= {f"local_{k}": local[:, k] for k in range(local.shape[1])}
    table = pd.concat([table, pd.DataFrame(latent, index=table.index)], axis=1)
    return add_projections(table, cell_features(table))


def cell_features(table: pd.DataFrame) -> np.ndarray:
    """A cell's description for maps, neighbours and probes, ``(N, D + K)``: the global code
    ``z_mean_*`` then the local summary ``local_*`` (when the table has it), each column
    standardised over the cells so neither part dominates by its units."""
    from cellvae.io.tables import numbered_columns

    columns = numbered_columns(table, "z_mean_") + numbered_columns(table, "local_")
    if not columns:
        raise CellvaeError("cell table: no z_mean_* columns (not a cellvae embed table)")
    codes = table[columns].to_numpy(np.float64)
    spread = codes.std(0)
    return (codes - codes.mean(0)) / np.where(spread > 0, spread, 1.0)


def add_projections(table: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """Add ``pca_0/1`` (and ``umap_0/1`` if umap-learn is installed) of ``codes`` ``(N, D)``."""
    from sklearn.decomposition import PCA

    n_comp = min(2, *codes.shape)
    pca = np.zeros((len(codes), 2))
    if len(codes) >= 2:
        pca[:, :n_comp] = PCA(n_components=n_comp).fit_transform(codes)
    table["pca_0"], table["pca_1"] = pca[:, 0], pca[:, 1]
    try:
        import umap
    except ImportError:
        return table
    if len(codes) > 15:
        emb = umap.UMAP(n_components=2, random_state=0).fit_transform(codes)
        table["umap_0"], table["umap_1"] = emb[:, 0], emb[:, 1]
    return table


def _frames(image, t: int | str | None, source: str) -> list[int | None]:
    """Time points to embed: ``[None]`` without a time axis, else the chosen ones."""
    n = image.shape[image.axes.index("t")] if "t" in image.axes else 1
    if t is None:
        if n > 1:
            raise CellvaeError(
                f"{source}: a time-lapse of {n} time points; embed one with --t N "
                f"(0 .. {n - 1}) or all with --t all"
            )
        return [None]
    if t == "all":
        return list(range(n)) if "t" in image.axes else [None]
    t = int(t)
    if not 0 <= t < n:
        raise CellvaeError(f"--t: {t} out of range; {source} has {n} time point(s)")
    return [t] if "t" in image.axes else [None]


def _check_static_labels(lab, frames: list, labels_static: bool, source: str) -> None:
    """Refuse single-frame labels for several time points unless ``labels_static`` (then warn)."""
    import warnings

    timed = "t" in lab.axes and lab.shape[lab.axes.index("t")] > 1
    if timed or len(frames) < 2:
        return
    if not labels_static:
        raise CellvaeError(
            f"{source}: labels of one frame for {len(frames)} time points; give labels with a "
            "t axis, embed one time point (--t N), or pass --labels-static to apply these "
            "labels to every frame"
        )
    warnings.warn(
        f"{source}: the same labels are applied to all {len(frames)} time points "
        "(--labels-static); cells that move are embedded where the labels put them",
        stacklevel=3,
    )


def _label_frame(lab_array, lab_axes: str, names: str, t: int | None, source: str):
    """The spatial ``names`` part of the labels at time ``t`` (static labels: all times)."""
    index, kept = [], ""
    for a, n in zip(lab_axes, lab_array.shape):
        if a in names:
            index.append(slice(None))
            kept += a
        elif a == "t" and t is not None and n > 1:
            if t >= n:
                raise CellvaeError(f"{source}: labels have {n} time points, --t {t} asks for more")
            index.append(t)
        elif n == 1:
            index.append(0)
        else:
            raise CellvaeError(
                f"{source}: labels have {n} planes along {a!r}; give one label image per "
                "image (or --axes to name the label axes)"
            )
    frame = lab_array[tuple(index)]
    return frame.transpose([kept.index(a) for a in names]) if kept != names else frame


def embed_file(
    ckpt,
    input,
    labels,
    output,
    batch_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    label_axes: str | None = None,
    t: int | str | None = None,
    neighbours: str = "masked",
    labels_static: bool = False,
    finetune_steps: int = 0,
):
    """``cellvae embed``: embed every cell of ``labels`` in the OME-Zarr ``input`` into a table:
    Parquet, or AnnData when ``output`` ends in ``.h5ad`` (:mod:`cellvae.io.tables`).

    ``t`` picks one time point of a time-lapse, or ``"all"`` embeds every one (a ``t``
    column says which); labels with a time axis follow the image. Labels of a single frame
    are applied to every time point of ``"all"`` only with ``labels_static`` (cells that
    move would otherwise be embedded at the wrong places without a word), with a warning.
    ``neighbours`` masks (default) or keeps the other cells in each crop. ``finetune_steps``
    > 0 first fine-tunes the model on the cells' crops; the ``finetune_steps`` column records
    it, the fine-tuned model is saved beside the table as ``<stem>.finetuned.ckpt``
    (:mod:`cellvae.inference.finetuned`), written and replaced together with it, and the
    table's provenance names it as its ``ckpt`` (the checkpoint given as ``finetuned_from``).
    ``label_axes`` names the axes of a label TIFF without metadata.
    Refuses (one line, nothing written) a 2D model on a volume, labels of another shape,
    labels that are not whole numbers >= 0, empty labels and an existing output (table or
    fine-tuned model) without ``overwrite``.
    """
    from cellvae.inference.finetuned import FINETUNE_CELLS, finetune_on_cells, finetuned_path
    from cellvae.inference.layout import ChannelView, Layout
    from cellvae.inference.model import default_patch, load_model, quantizers_for
    from cellvae.io.atomic import check_output
    from cellvae.io.omezarr import open_image, open_labels
    from cellvae.io.tables import check_table_output

    check_output(output, overwrite)
    if finetune_steps > 0:
        check_output(finetuned_path(output), overwrite)
    check_table_output(output)
    image = open_image(input)
    frames = _frames(image, t, str(input))
    lab = open_labels(labels, axes=label_axes)
    check_label_dtype(lab.dtype, str(labels))
    _check_static_labels(lab, frames, labels_static, str(labels))
    vae, hparams = load_model(ckpt)
    layout = Layout.of(image.axes, vae.ndim, source=str(input))
    if any(image.shape[p] > 1 for p in layout.loop if image.axes[p] != "t"):
        raise CellvaeError(
            f"{input}: axes {image.axes!r} hold several {vae.ndim}D images; embed needs one"
        )
    names = "".join(image.axes[p] for p in layout.spatial)
    lab_array = lab.to_dask()
    views = []
    for frame in frames:
        loop = tuple(
            frame if image.axes[p] == "t" and frame is not None else 0 for p in layout.loop
        )
        views.append(ChannelView(image.array, layout, loop))
    view = views[0]
    if view.shape[0] != vae.in_channels:
        raise CellvaeError(
            f"{input}: {view.shape[0]} channel(s); the model takes {vae.in_channels}"
        )
    label_frames = [_label_frame(lab_array, lab.axes, names, f, str(labels)) for f in frames]
    if tuple(label_frames[0].shape) != view.shape[1:]:
        raise CellvaeError(
            f"{labels}: label shape {tuple(lab.shape)} differs from the image's {view.shape[1:]}"
        )
    quantizers = quantizers_for(
        image.stats,
        view.shape[0],
        int(hparams.get("bits", 8)),
        lambda c: view[(c, *[slice(None, None, max(1, s // 512)) for s in view.shape[1:]])],
    )
    patch = default_patch(vae, hparams)
    tuning = None
    if finetune_steps > 0:
        crops = []
        for frame_view, frame_labels in zip(views, label_frames):
            cells = measure_cells(frame_labels, names, str(labels))
            crops.append(cell_crops(frame_view, frame_labels, cells, names, patch, neighbours))
        crops = np.concatenate(crops)
        finetune_on_cells(vae, crops, quantizers, finetune_steps, seed=0)
        tuning = {
            "steps": int(finetune_steps),
            "seed": 0,
            "crops": min(len(crops), FINETUNE_CELLS),
            "input": str(input),
            "labels": str(labels),
            "t": [f for f in frames if f is not None] or None,
            "neighbours": neighbours,
        }
    tables = []
    for frame, frame_view, frame_labels in zip(frames, views, label_frames):
        part = cell_embeddings(
            vae,
            frame_view,
            frame_labels,
            names,
            quantizers,
            patch,
            batch_size,
            progress,
            source=str(labels),
            neighbours=neighbours,
        )
        part["finetune_steps"] = int(finetune_steps)
        if frame is not None and (t == "all" or image.shape[image.axes.index("t")] > 1):
            part.insert(1, "t", frame)
        tables.append(part)
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    if len(tables) > 1:
        table = table.drop(columns=[c for c in table if c[:5] in ("pca_", "umap_")])
        table = add_projections(table, cell_features(table))
    voxel = float(np.prod([image.voxel_size.get(a, 1.0) for a in names]))
    table.insert(
        table.columns.get_loc("size_voxels") + 1, "size_physical", table["size_voxels"] * voxel
    )
    _write(table, output, overwrite, vae, ckpt, tuning)
    return table


def _write(table, output, overwrite: bool, vae, ckpt, tuning: dict | None) -> None:
    """Write the table, and with ``tuning`` (the fine-tuning record) the fine-tuned model
    beside it, both atomically: the model is renamed into place first, and neither is if
    writing either fails."""
    from contextlib import ExitStack

    from cellvae.inference.finetuned import finetuned_path, finetuned_provenance, save_finetuned
    from cellvae.io.atomic import atomic_output
    from cellvae.io.provenance import current_provenance, make_provenance, recording
    from cellvae.io.tables import write_cell_table

    provenance = current_provenance()
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(output, overwrite))
        if tuning is not None:
            model = finetuned_path(output)
            save_finetuned(vae, ckpt, stack.enter_context(atomic_output(model, overwrite)), tuning)
            inputs = {"input": tuning["input"], "labels": tuning["labels"], "ckpt": ckpt}
            provenance = finetuned_provenance(provenance or make_provenance("embed", inputs), model)
        with recording(provenance):
            write_cell_table(table, tmp, kind_of=output)
