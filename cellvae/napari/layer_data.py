"""napari layer data for cellvae's files, without importing napari.

Each function returns a layer-data tuple ``(data, kwargs, layer_type)`` in physical world
coordinates: the OME-Zarr metadata is read through :mod:`cellvae.io.omezarr` (scale,
translation, units, channel names), TIFFs through :mod:`cellvae.io.tiff`, so every layer of a
results folder lands on the grid of the image it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellvae.errors import CellvaeError

LayerData = tuple[Any, dict[str, Any], str]


@dataclass
class Grid:
    """Where an image's pixels sit in the world: per axis of ``axes`` (storage order).

    ``scale`` and ``translate`` are physical (the voxel size and the centre of voxel 0),
    ``units`` NGFF unit names (``"pixel"`` where none is stored).
    """

    axes: str
    shape: tuple[int, ...]
    scale: list[float]
    translate: list[float]
    units: list[str]

    def spatial(self) -> Grid:
        """The same grid over the spatial axes only (``zyx``)."""
        keep = [i for i, a in enumerate(self.axes) if a in "zyx"]
        return Grid(
            "".join(self.axes[i] for i in keep),
            tuple(self.shape[i] for i in keep),
            [self.scale[i] for i in keep],
            [self.translate[i] for i in keep],
            [self.units[i] for i in keep],
        )

    def kwargs(self) -> dict[str, Any]:
        """The layer keyword arguments that place data on this grid."""
        return {
            "scale": list(self.scale),
            "translate": list(self.translate),
            "units": tuple(self.units),
            "axis_labels": tuple(self.axes),
        }


def limits(array) -> list[float]:
    """0.1 and 99.9 percentiles of a coarse view (at most ~1 M values): contrast limits."""
    step = max(1, int((array.size / 1e6) ** (1 / array.ndim)))
    sample = np.asarray(array[(slice(None, None, step),) * array.ndim], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    if not finite.size:
        return [0.0, 1.0]
    lo, hi = np.percentile(finite, [0.1, 99.9])
    return [float(lo), float(hi) if hi > lo else float(lo) + 1.0]


def _grid_of(axes: str, shape, voxel: dict, translation: dict, units: dict) -> Grid:
    return Grid(
        axes,
        tuple(int(n) for n in shape),
        [float(voxel.get(a, 1.0)) for a in axes],
        [float(translation.get(a, 0.0)) for a in axes],
        [units.get(a) or "pixel" for a in axes],
    )


def open_levels(path: Path | str) -> tuple[Grid, list, list[str] | None]:
    """The grid of level 0, the lazy arrays of every pyramid level and the channel names.

    An OME-Zarr image is opened through :func:`cellvae.io.omezarr.open_image`, a TIFF through
    :func:`cellvae.io.tiff.read_tiff_meta`; anything else is a one-line :class:`CellvaeError`.
    """
    from cellvae.io.remote import is_url

    if not is_url(path) and Path(path).suffix.lower() in (".tif", ".tiff"):
        from cellvae.io.tiff import read_tiff_meta

        meta = read_tiff_meta(path)
        grid = _grid_of(meta.axes, meta.shape, meta.voxel_size, {}, meta.units)
        return grid, [meta.to_dask()], meta.channel_names
    from cellvae.io.omezarr import open_image

    try:
        image = open_image(path)
        arrays = [open_image(path, level=i).to_dask() for i in range(len(image.levels))]
    except CellvaeError:
        raise
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable OME-Zarr image ({err})") from None
    grid = _grid_of(image.axes, image.shape, image.voxel_size, image.translation, image.units)
    return grid, arrays, image.channel_names


def image_layer(path: Path | str, name: str, **kwargs: Any) -> LayerData:
    """An OME-Zarr image (all pyramid levels, lazily; a path or an https:// or s3:// URL) or
    a TIFF as a napari image layer.

    A channel axis of length 1 is dropped; a longer one becomes napari's ``channel_axis``
    with one layer per channel, named after the stored channel names when there are any.
    """
    grid, arrays, channels = open_levels(path)
    meta: dict[str, Any] = {"name": name, "metadata": {"path": str(path), "axes": grid.axes}}
    if "c" in grid.axes:
        c = grid.axes.index("c")
        if arrays[0].shape[c] == 1:
            arrays = [a[(slice(None),) * c + (0,)] for a in arrays]
            keep = grid.axes.replace("c", "")
            grid = Grid(
                keep,
                tuple(n for i, n in enumerate(grid.shape) if i != c),
                *([v for i, v in enumerate(x) if i != c] for x in (grid.scale, grid.translate)),
                [u for i, u in enumerate(grid.units) if i != c],
            )
            meta["metadata"]["axes"] = keep
        else:
            meta["channel_axis"] = c
            if channels:
                meta["name"] = [f"{name.split(' [')[0]} {ch} [{_tag(name)}]" for ch in channels]
            keep = [i for i in range(len(grid.axes)) if i != c]
            grid = Grid(
                "".join(grid.axes[i] for i in keep),
                tuple(grid.shape[i] for i in keep),
                [grid.scale[i] for i in keep],
                [grid.translate[i] for i in keep],
                [grid.units[i] for i in keep],
            )
    meta.update(grid.kwargs())
    if "channel_axis" not in meta:
        meta["contrast_limits"] = limits(arrays[-1])
    if len(arrays) > 1:
        meta["multiscale"] = True
    meta.update(kwargs)
    return (arrays if len(arrays) > 1 else arrays[0], meta, "image")


def _tag(name: str) -> str:
    return name.split(" [", 1)[1].rstrip("]") if " [" in name else ""


def blur_translation(blur: dict | None, scale: list[float], axes: str) -> list[float] | None:
    """Where map pixel 0 sits: the centre of window 0, ``(stride - 1) / 2`` image pixels in.

    Used when the blur map's NGFF metadata carries no translation; ``scale`` is the map's
    (the image voxel times the stride along the analysed axes).
    """
    if not blur or "stride_px" not in blur:
        return None
    stride = float(blur["stride_px"])
    analysed = blur.get("analysed_axes", axes[-2:])
    return [s / stride * (stride - 1) / 2 if a in analysed else 0.0 for a, s in zip(axes, scale)]


def labels_layer(path: Path, table, name: str, image: Grid | None = None) -> LayerData:
    """The label image (lazily) with the cells table as ``features`` (``index`` = label id).

    ``image`` is the spatial grid of the image the labels belong to: the labels take its
    scale, translation and units (a plain TIFF carries no voxel size, and labels drawn on an
    image are on its grid), and labels of another spatial shape are refused in one line.
    """
    from cellvae.io.omezarr import open_labels

    try:
        labels = open_labels(path)
        array = labels.to_dask()
    except CellvaeError:
        raise
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable label image ({err})") from None
    axes = labels.axes
    keep = [i for i, (a, s) in enumerate(zip(axes, array.shape)) if a in "zyx" or s > 1]
    if len(keep) < array.ndim:
        array = array[tuple(slice(None) if i in keep else 0 for i in range(array.ndim))]
        axes = "".join(axes[i] for i in keep)
    grid = _grid_of(
        axes,
        array.shape,
        labels.voxel_size,
        getattr(labels, "translation", {}) or {},
        getattr(labels, "units", {}) or {},
    )
    if image is not None:
        spatial = tuple(n for a, n in zip(axes, array.shape) if a in "zyx")
        if spatial != image.shape:
            raise CellvaeError(
                f"{path}: label shape {spatial} differs from the image's {image.shape}: "
                "the labels belong to another image"
            )
        place = dict(zip(image.axes, zip(image.scale, image.translate, image.units)))
        for i, a in enumerate(axes):
            if a in place:
                grid.scale[i], grid.translate[i], grid.units[i] = place[a]
    meta = {
        "name": name,
        "opacity": 0.5,
        "blending": "translucent",
        "metadata": {"path": str(path), "axes": axes},
        **grid.kwargs(),
    }
    if table is not None:
        meta["features"] = table
    return (array, meta, "labels")


def read_table(path: Path):
    """``cells.parquet`` (or ``cells.h5ad``) as a DataFrame with an ``index`` column (the
    label id)."""
    from cellvae.io.tables import read_cell_table

    return read_cell_table(path)


def check_table_labels(table, labels) -> str | None:
    """One line saying how the table's cells fail to match ``labels``, or None if they match.

    Every table row must name a label id present in the label image and its bounding box
    (``bbox_<a>_max`` columns) must fit inside the image.
    """
    axes = "zyx"[-labels.ndim :] if labels.ndim <= 3 else None
    if axes:
        for a, n in zip(axes, labels.shape):
            column = f"bbox_{a}_max"
            if column in table and len(table) and int(table[column].max()) > n:
                return (
                    f"the table's cells reach {a} = {int(table[column].max())} but the "
                    f"labels are only {n} long on {a}: the table belongs to another image"
                )
    if labels.size > 50_000_000:
        return None  # too large to scan here; the bounding boxes were checked
    array = np.asarray(labels).ravel()
    ids = table["index"].to_numpy().astype(np.int64)
    if not array.size or not ids.size:
        absent = ids
    else:  # presence by direct indexing: O(voxels), unlike np.unique's sort or hash
        top = max(int(array.max()), int(ids.max()), 0)
        seen = np.zeros(top + 1, bool)
        seen[array[array >= 0]] = True
        absent = ids[(ids < 0) | ~seen[np.clip(ids, 0, top)]]
    if absent.size:
        shown = ", ".join(str(int(i)) for i in absent[:5])
        return (
            f"{absent.size} of the table's {ids.size} cells are not in the labels "
            f"(label ids {shown}{', ...' if absent.size > 5 else ''})"
        )
    return None


def montage(stack: np.ndarray, gap: int = 2, cols: int | None = None) -> np.ndarray:
    """A stack ``(N, *S)`` of samples as one image: a grid over the last two axes of ``S``.

    Samples are not in the image's coordinates; as a montage they add no slider to the viewer.
    ``cols`` defaults to a square grid; ``cols=N`` gives one row (a strip). Gaps are NaN.
    """
    n = stack.shape[0]
    cols = int(np.ceil(np.sqrt(n))) if cols is None else cols
    rows = -(-n // cols)
    *lead, h, w = stack.shape[1:]
    out = np.full((*lead, rows * (h + gap), cols * (w + gap)), np.nan, np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[..., r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = stack[i]
    return out


def stack_info(path: Path) -> dict:
    """What ``cellvae sample`` records in its TIFF's JSON description (axes, voxel size,
    units, intensity units), or ``{}`` for another TIFF."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        shaped = tif.shaped_metadata or ({},)
    return dict(shaped[0] or {})


def samples_layer(path: Path, name: str) -> LayerData:
    """``cellvae sample``'s stack ``(N, [C,] *patch)`` as one montage image (hidden).

    The montage takes the voxel size and units the stack records (``cellvae sample`` writes
    the training data's), so a sample is drawn at the size of a cell in the image.
    """
    import tifffile

    try:
        stack = np.asarray(tifffile.imread(path), np.float32)
        info = stack_info(path)
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable TIFF ({err})") from None
    stack = stack.reshape(1, *stack.shape) if stack.ndim == 2 else stack
    image = montage(stack)
    meta: dict[str, Any] = {
        "name": name,
        "visible": False,
        "contrast_limits": limits(image),
        "metadata": {"path": str(path)},
    }
    axes = str(info.get("axes", "")).lower().replace("t", "")
    voxel = info.get("voxel_size") or {}
    if voxel and "c" not in axes and len(axes) == image.ndim:
        units = info.get("units") or {}
        meta["scale"] = [float(voxel.get(a, 1.0)) for a in axes]
        meta["units"] = tuple(units.get(a) or "pixel" for a in axes)
        meta["axis_labels"] = tuple(axes)
    return (image, meta, "image")
