"""A cellvae results folder, read into napari layer data without importing napari.

A results folder holds any of ``recon.ome.zarr``, ``blurmap.ome.zarr``, ``blur.json``,
``cells.parquet`` (or ``cells.h5ad``), ``samples.tif`` and ``report.md`` (what ``make demo``
and the workflow write); a parent folder may hold several under ``<image>/<preset>/``. The
original image and the label image are not copied into the folder: they are found through the
provenance that every output records (``recon.ome.zarr`` attrs
``["cellvae"]["provenance"]["inputs"]["input"]`` and the ``b"cellvae"`` schema metadata of
``cells.parquet``, role ``"labels"``).

:func:`results_layers` returns napari layer-data tuples ``(data, kwargs, layer_type)`` with
world coordinates in the images' physical units, so the blur map (a grid ``stride`` times
coarser, centred on its windows) overlays the image it was computed from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellvae.errors import CellvaeError

#: files of a results folder, in the order their layers are stacked (bottom first).
RESULT_FILES = (
    "recon.ome.zarr",
    "blurmap.ome.zarr",
    "blur.json",
    "cells.parquet",
    "cells.h5ad",
    "samples.tif",
    "report.md",
)
LayerData = tuple[Any, dict[str, Any], str]


def is_results_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding at least one cellvae result file."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in RESULT_FILES)


def find_results(path: str | Path) -> list[Path]:
    """``path`` itself if it is a results folder, else its ``<image>/<preset>/`` results."""
    path = Path(path)
    if is_results_folder(path):
        return [path]
    if not path.is_dir():
        return []
    found = [p for p in sorted(path.glob("*/*")) if is_results_folder(p)]
    return found or [p for p in sorted(path.glob("*")) if is_results_folder(p)]


def zarr_provenance(path: str | Path) -> dict | None:
    """``attrs["cellvae"]["provenance"]`` of an OME-Zarr output, or None."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:
        return None
    return (attrs.get("cellvae") or {}).get("provenance")


def parquet_provenance(path: str | Path) -> dict | None:
    """The provenance in a Parquet output's ``b"cellvae"`` schema metadata, or None."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[b"cellvae"]).get("provenance")
    except Exception:
        return None


def _input(provenance: dict | None, role: str) -> Path | str | None:
    """An input named by provenance: a path, or a URL (``https://``, ``s3://``) as it is."""
    from cellvae.io.remote import as_location

    value = ((provenance or {}).get("inputs") or {}).get(role)
    return as_location(value) if value else None


def _relative(value: str | None, folder: Path) -> Path | None:
    """A path as typed on a command line: as it is, or below one of ``folder``'s ancestors."""
    if not value:
        return None
    given = Path(value)
    if given.is_absolute() or given.exists():
        return given
    return next((a / given for a in folder.resolve().parents if (a / given).exists()), given)


@dataclass
class ResultsFolder:
    """The outputs found in one results folder and the inputs their provenance names.

    ``problems`` lists, one line each, what is missing or unreadable; the rest still loads.
    """

    path: Path
    files: dict[str, Path] = field(default_factory=dict)
    original: Path | None = None
    labels: Path | None = None
    ckpt: Path | None = None
    blur: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A short name for layer titles: ``image/preset`` of the workflow layout."""
        return "/".join(self.path.parts[-2:]) if len(self.path.parts) > 1 else self.path.name


def read_results(path: str | Path) -> ResultsFolder:
    """Find the outputs of a results folder and follow their provenance to the inputs."""
    path = Path(path)
    if not is_results_folder(path):
        raise CellvaeError(
            f"{path}: not a cellvae results folder (none of {', '.join(RESULT_FILES)})"
        )
    res = ResultsFolder(path, {n: path / n for n in RESULT_FILES if (path / n).exists()})
    cells = _cells_file(res)
    missing = [n for n in (*RESULT_FILES[:3], cells) if n not in res.files]
    if missing:
        res.problems.append(f"{path}: no {', '.join(missing)}; showing the rest")
    recon_prov = (
        zarr_provenance(res.files["recon.ome.zarr"]) if "recon.ome.zarr" in res.files else None
    )
    from cellvae.io.provenance import read_provenance

    cells_prov = read_provenance(res.files[cells]) if cells in res.files else None
    if "blur.json" in res.files:
        try:
            res.blur = json.loads(res.files["blur.json"].read_text())
        except (OSError, ValueError) as err:
            res.problems.append(f"{res.files['blur.json']}: unreadable ({err})")
    blur_prov = (
        zarr_provenance(res.files["blurmap.ome.zarr"]) if "blurmap.ome.zarr" in res.files else None
    )
    candidates = [
        ("recon.ome.zarr", _input(recon_prov, "input")),
        (cells, _input(cells_prov, "input")),
        ("blurmap.ome.zarr", _input(blur_prov, "original")),
        # cellvae blur's summary names its original as given on the command line
        ("blur.json", _relative((res.blur or {}).get("original"), path)),
    ]
    res.original = _existing(res, "original image", candidates)
    if cells in res.files:
        res.labels = _existing(res, "labels", [(cells, _input(cells_prov, "labels"))])
    res.ckpt = _input(recon_prov, "ckpt") or _input(cells_prov, "ckpt")
    if res.ckpt is not None and not res.ckpt.exists():
        res.ckpt = None
    return res


def _cells_file(res: ResultsFolder) -> str:
    """The name of the folder's cell table: ``cells.h5ad`` if only that one is there, else
    ``cells.parquet``."""
    return (
        "cells.h5ad"
        if set(res.files) & {"cells.parquet", "cells.h5ad"} == {"cells.h5ad"}
        else "cells.parquet"
    )


def _existing(res: ResultsFolder, what: str, candidates: list[tuple[str, Path | None]]):
    """The first candidate path that exists; a problem line if none does."""
    named = [(source, p) for source, p in candidates if source in res.files and p is not None]
    from cellvae.io.remote import is_url

    for _, p in named:
        if is_url(p) or p.exists():  # a URL is tried when its layer is read
            return p
    if named:
        source, p = named[0]
        res.problems.append(f"{res.path / source}: its {what} {p} does not exist")
    elif any(source in res.files for source, _ in candidates):
        source = next(s for s, _ in candidates if s in res.files)
        res.problems.append(f"{res.path / source}: no provenance naming its {what}")
    return None


def _ngff(path: Path) -> tuple[str, list[np.ndarray], np.ndarray]:
    """Axes, per-level scale and the translation of level 0 of an NGFF multiscale image."""
    import zarr

    from cellvae.io.remote import zarr_target

    attrs = dict(zarr.open_group(store=zarr_target(path), mode="r").attrs)
    ms = (attrs.get("ome") or attrs)["multiscales"][0]
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms["axes"]).lower()
    top = ms.get("coordinateTransformations") or []
    scales, translation = [], np.zeros(len(axes))
    for i, ds in enumerate(ms["datasets"]):
        scale = np.ones(len(axes))
        for t in (ds.get("coordinateTransformations") or []) + top:
            if t.get("type") == "scale":
                scale = scale * np.asarray(t["scale"], float)
            elif t.get("type") == "translation" and i == 0:
                translation = translation + np.asarray(t["translation"], float)
        scales.append(scale)
    return axes, scales, translation


def _limits(array) -> list[float]:
    """0.1 and 99.9 percentiles of a coarse view (at most ~1 M values): contrast limits."""
    step = max(1, int((array.size / 1e6) ** (1 / array.ndim)))
    sample = np.asarray(array[(slice(None, None, step),) * array.ndim], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    if not finite.size:
        return [0.0, 1.0]
    lo, hi = np.percentile(finite, [0.1, 99.9])
    return [float(lo), float(hi) if hi > lo else float(lo) + 1.0]


def _squeeze_channel(axes: str, arrays: list, scales: list[np.ndarray], translation):
    """Drop a channel axis of length 1; keep a longer one as napari's ``channel_axis``."""
    if "c" not in axes:
        return axes, arrays, scales, translation, None
    c = axes.index("c")
    if arrays[0].shape[c] > 1:
        return axes, arrays, scales, translation, c
    index = (slice(None),) * c + (0,)
    keep = [i for i in range(len(axes)) if i != c]
    return (
        axes.replace("c", ""),
        [a[index] for a in arrays],
        [s[keep] for s in scales],
        translation[keep],
        None,
    )


def image_layer(path: Path | str, name: str, **kwargs: Any) -> LayerData:
    """An OME-Zarr image (all pyramid levels, lazily; a path or an https:// or s3:// URL)
    or a TIFF as a napari image layer."""
    import dask.array as da

    from cellvae.io.remote import is_url, zarr_target

    if not is_url(path) and Path(path).suffix.lower() in (".tif", ".tiff"):
        from cellvae.io.tiff import read_tiff_meta

        meta = read_tiff_meta(path)
        axes, arrays = meta.axes, [meta.to_dask()]
        scales = [np.array([meta.voxel_size.get(a, 1.0) for a in axes])]
        translation = np.zeros(len(axes))
    else:
        import zarr

        try:
            axes, scales, translation = _ngff(path)
            group = zarr.open_group(store=zarr_target(path), mode="r")
            attrs = dict(group.attrs)
            ms = (attrs.get("ome") or attrs)["multiscales"][0]
            arrays = [da.from_zarr(group[ds["path"]]) for ds in ms["datasets"]]
        except Exception as err:
            raise CellvaeError(f"{path}: not a readable OME-Zarr image ({err})") from None
    axes, arrays, scales, translation, channel = _squeeze_channel(axes, arrays, scales, translation)
    meta = {
        "name": name,
        "scale": scales[0].tolist(),
        "translate": translation.tolist(),
        "contrast_limits": _limits(arrays[-1]),
        "metadata": {"path": str(path), "axes": axes},
    }
    if channel is not None:
        meta["channel_axis"] = channel
        meta.pop("contrast_limits")
    if len(arrays) > 1:
        meta["multiscale"] = True
    meta.update(kwargs)
    return (arrays if len(arrays) > 1 else arrays[0], meta, "image")


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


def labels_layer(path: Path, table, name: str) -> LayerData:
    """The label image (lazily) with the cells table as ``features`` (``index`` = label id)."""
    from cellvae.io.omezarr import open_labels

    try:
        labels = open_labels(path)
    except CellvaeError:
        raise
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable label image ({err})") from None
    axes = labels.axes
    array = labels.to_dask()
    keep = [i for i, (a, s) in enumerate(zip(axes, array.shape)) if a in "zyx" or s > 1]
    if len(keep) < array.ndim:
        array = array[tuple(slice(None) if i in keep else 0 for i in range(array.ndim))]
        axes = "".join(axes[i] for i in keep)
    scale = [labels.voxel_size.get(a, 1.0) for a in axes]
    meta = {
        "name": name,
        "scale": scale,
        "opacity": 0.5,
        "blending": "translucent",
        "metadata": {"path": str(path), "axes": axes},
    }
    if table is not None:
        meta["features"] = table
    return (array, meta, "labels")


def read_table(path: Path):
    """``cells.parquet`` (or ``.h5ad``) as a DataFrame with an ``index`` column (the label id)."""
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


def samples_layer(path: Path, name: str) -> LayerData:
    """``cellvae sample``'s stack ``(N, [C,] *patch)`` as one montage image (hidden)."""
    import tifffile

    try:
        stack = np.asarray(tifffile.imread(path), np.float32)
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable TIFF ({err})") from None
    stack = stack.reshape(1, *stack.shape) if stack.ndim == 2 else stack
    image = montage(stack)
    return (
        image,
        {
            "name": name,
            "visible": False,
            "contrast_limits": _limits(image),
            "metadata": {"path": str(path)},
        },
        "image",
    )


def results_layers(path: str | Path) -> tuple[list[LayerData], list[str]]:
    """Layer data for a results folder, and the problems met (one line each).

    Layers, bottom to top: original (magenta) and reconstruction (green), added so that
    agreement looks white; the blur map (HF power ratio, 0..1, ``inferno``, translucent);
    the labels with the cells table as ``features``; the prior samples (hidden).
    """
    res = read_results(path)
    problems = list(res.problems)
    layers: list[LayerData] = []
    tag = res.name
    common = {"blending": "additive"}
    meta_common = {"cellvae_results": str(res.path)}

    def add(make, *args, **kwargs) -> LayerData | None:
        try:
            layer = make(*args, **kwargs)
        except CellvaeError as err:
            problems.append(str(err))
            return None
        layer[1].setdefault("metadata", {}).update(meta_common)
        layers.append(layer)
        return layer

    if res.original is not None:
        add(image_layer, res.original, f"original [{tag}]", colormap="magenta", **common)
    if "recon.ome.zarr" in res.files:
        add(
            image_layer,
            res.files["recon.ome.zarr"],
            f"reconstruction [{tag}]",
            colormap="green",
            **common,
        )
    if "blurmap.ome.zarr" in res.files:
        layer = add(
            image_layer,
            res.files["blurmap.ome.zarr"],
            f"blur map [{tag}]",
            colormap="inferno",
            contrast_limits=[0.0, 1.0],
            opacity=0.5,
            blending="translucent",
            visible=False,
        )
        if layer is not None and not any(layer[1]["translate"]):
            shift = blur_translation(res.blur, layer[1]["scale"], layer[1]["metadata"]["axes"])
            if shift is not None:
                layer[1]["translate"] = shift
            if layer is not None:
                layer[1]["metadata"]["blur"] = res.blur
    cells = _cells_file(res)
    if cells in res.files:
        try:
            table = read_table(res.files[cells])
        except CellvaeError as err:
            problems.append(str(err))
            table = None
        if res.labels is not None:
            layer = add(labels_layer, res.labels, table, f"cells [{tag}]")
            if layer is not None and table is not None:
                mismatch = check_table_labels(table, layer[0])
                if mismatch:
                    problems.append(f"{res.files[cells]}: {mismatch}")
                    layer[1].pop("features")
            if layer is not None and table is not None and "features" in layer[1]:
                layer[1]["metadata"]["cells_table"] = str(res.files[cells])
    if "samples.tif" in res.files:
        add(samples_layer, res.files["samples.tif"], f"prior samples [{tag}]")
    for layer in layers:
        layer[1]["metadata"]["ckpt"] = str(res.ckpt) if res.ckpt else None
    return layers, problems
