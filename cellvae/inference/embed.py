"""Per-cell latent embeddings: one table row per labelled cell, ready for pandas and napari.

Cell geometry (centroid, bounding box, voxel count) is accumulated slab by slab over the label
image, so memory does not grow with the image. Each cell's crop (the model's patch, centred on
the rounded centroid, mirrored where it leaves the image) is read per batch, quantized and
encoded; the posterior mean and log-variance become columns ``z_mean_i`` / ``z_logvar_i``.
``pca_0/1`` (and ``umap_0/1`` when umap-learn is installed) give a 2D map for plotting. The
``index`` column holds the label id, which is how napari matches ``features`` rows to labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError
from cellvae.inference.model import device_of, to_input

#: Voxels of the label image read at once when measuring cells.
SLAB_VOXELS = 2**24


def measure_cells(labels, names: str) -> pd.DataFrame:
    """Label id, voxel count, centroid and bounding box of every label > 0.

    ``labels`` is a lazily indexable array over the spatial axes ``names`` (e.g. ``"zyx"``),
    read in slabs along its first axis. Columns: ``label``, ``size_voxels``,
    ``centroid_<a>`` (voxels), ``bbox_<a>_min`` / ``bbox_<a>_max`` (max exclusive).
    """
    shape = labels.shape
    step = max(1, SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    parts = []
    for start in range(0, shape[0], step):
        slab = np.asarray(labels[start : start + step])
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
        raise CellvaeError("labels: the label image is empty (no label > 0)")
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


def crop_centered(image, center: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """The ``patch``-sized crop of ``image`` (``(C, *S)``, lazily indexable) centred on ``center``.

    The crop spans ``[c - p // 2, c - p // 2 + p)`` per axis; parts outside the image are
    filled by mirroring the image at its border.
    """
    spatial = image.shape[1:]
    lo = [int(c) - p // 2 for c, p in zip(center, patch)]
    hi = [a + p for a, p in zip(lo, patch)]
    read = tuple(slice(max(a, 0), min(b, s)) for a, b, s in zip(lo, hi, spatial))
    crop = np.asarray(image[(slice(None), *read)])
    pad = [(0, 0)] + [(max(-a, 0), max(b - s, 0)) for a, b, s in zip(lo, hi, spatial)]
    return np.pad(crop, pad, mode="symmetric") if any(sum(p) for p in pad) else crop


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
    """
    from tqdm.auto import tqdm

    if tuple(labels.shape) != tuple(image.shape[1:]):
        raise CellvaeError(
            f"labels: shape {tuple(labels.shape)} differs from the image's {tuple(image.shape[1:])}"
        )
    table = measure_cells(labels, names)
    centers = np.rint(table[[f"centroid_{a}" for a in names]].to_numpy()).astype(np.int64)
    means, logvars = [], []
    device = device_of(vae)
    for start in tqdm(
        range(0, len(table), batch_size), desc="embed", unit="batch", disable=not progress
    ):
        crops = np.stack(
            [crop_centered(image, c, patch) for c in centers[start : start + batch_size]]
        )
        x = torch.from_numpy(to_input(crops.astype(np.float32), quantizers)).to(device)
        mean, logvar = vae.embed(x)
        means.append(mean.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    mean, logvar = np.concatenate(means), np.concatenate(logvars)
    table.insert(0, "index", table["label"])
    latent = {f"z_mean_{i}": mean[:, i] for i in range(mean.shape[1])}
    latent |= {f"z_logvar_{i}": logvar[:, i] for i in range(logvar.shape[1])}
    table = pd.concat([table, pd.DataFrame(latent, index=table.index)], axis=1)
    return add_projections(table, mean)


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


def embed_file(
    ckpt,
    input,
    labels,
    output,
    batch_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
):
    """``cellvae embed``: embed every cell of ``labels`` in the OME-Zarr ``input`` to parquet.

    Refuses (one line, nothing written) a time-lapse or a 2D model on a volume, labels of
    another shape, empty labels and an existing output without ``overwrite``.
    """
    from cellvae.inference.layout import ChannelView, Layout
    from cellvae.inference.model import default_patch, load_model, quantizers_for
    from cellvae.io.atomic import atomic_output, check_output
    from cellvae.io.omezarr import open_image, open_labels

    check_output(output, overwrite)
    vae, hparams = load_model(ckpt)
    image = open_image(input)
    layout = Layout.of(image.axes, vae.ndim, source=str(input))
    if any(image.shape[p] > 1 for p in layout.loop):
        raise CellvaeError(
            f"{input}: axes {image.axes!r} hold several {vae.ndim}D images; embed needs one"
        )
    view = ChannelView(image.array, layout)
    if view.shape[0] != vae.in_channels:
        raise CellvaeError(
            f"{input}: {view.shape[0]} channel(s); the model takes {vae.in_channels}"
        )
    names = "".join(image.axes[p] for p in layout.spatial)
    lab = open_labels(labels)
    lab_array = lab.to_dask()
    squeeze = tuple(
        i for i, (a, s) in enumerate(zip(lab.axes, lab.shape)) if a not in names and s == 1
    )
    lab_array = lab_array.squeeze(axis=squeeze) if squeeze else lab_array
    if lab_array.ndim != len(names) or tuple(lab_array.shape) != view.shape[1:]:
        raise CellvaeError(
            f"{labels}: label shape {tuple(lab.shape)} differs from the image's {view.shape[1:]}"
        )
    quantizers = quantizers_for(
        image.stats,
        view.shape[0],
        int(hparams.get("bits", 8)),
        lambda c: view[(c, *[slice(None, None, max(1, s // 512)) for s in view.shape[1:]])],
    )
    table = cell_embeddings(
        vae, view, lab_array, names, quantizers, default_patch(vae, hparams), batch_size, progress
    )
    voxel = float(np.prod([image.voxel_size.get(a, 1.0) for a in names]))
    table.insert(
        table.columns.get_loc("size_voxels") + 1, "size_physical", table["size_voxels"] * voxel
    )
    with atomic_output(output, overwrite) as tmp:
        table.to_parquet(tmp, index=False)
    return table
