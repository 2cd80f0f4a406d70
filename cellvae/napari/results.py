"""A cellvae results folder, read into napari layer data without importing napari.

A results folder holds any of the outputs :mod:`cellvae.discover` recognises (what ``make
demo`` and the workflow write: ``recon.ome.zarr``, ``blurmap.ome.zarr``, ``blur.json``,
``cells.parquet``, ``samples.tif``, ``report.md``, or the same outputs under other names);
a parent folder may hold several under ``<image>/<preset>/``. ``cellvae report`` finds them
the same way. The original image and the label image are not copied into the folder: they
are found through the provenance that every output records (``recon.ome.zarr`` attrs
``["cellvae"]["provenance"]["inputs"]["input"]`` and the ``b"cellvae"`` schema metadata of
``cells.parquet``, role ``"labels"``).

:func:`results_layers` returns napari layer-data tuples ``(data, kwargs, layer_type)`` with
world coordinates in the images' physical units, so the blur map (a grid ``stride`` times
coarser, centred on its windows) and the labels overlay the image they belong to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cellvae.discover import KIND, Found, outputs_in
from cellvae.discover import find_results as discover
from cellvae.errors import CellvaeError
from cellvae.napari.layer_data import (
    Grid,
    LayerData,
    blur_translation,
    check_table_labels,
    image_layer,
    labels_layer,
    montage,
    open_levels,
    read_table,
    samples_layer,
)

__all__ = ["LayerData", "find_results", "montage", "read_results", "results_layers"]


def find_results(path: str | Path) -> list[Path]:
    """The results folders at or below ``path`` (see :func:`cellvae.discover.find_results`)."""
    return [found.folder for found in discover(path)]


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

    ``files`` maps each kind of output (:data:`cellvae.discover.KINDS`) to the one shown
    (the newest); ``problems`` lists, one line each, what is missing, unreadable or found
    several times; the rest still loads. ``ckpt`` is the model of the reconstruction (else of
    the cells, else of the samples); ``cells_ckpt`` the one whose codes the cells table holds
    (after ``embed --finetune``, the fine-tuned model saved beside it).
    """

    found: Found
    original: Path | None = None
    labels: Path | None = None
    ckpt: Path | None = None
    cells_ckpt: Path | None = None
    blur: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The folder."""
        return self.found.folder

    @property
    def files(self) -> dict[str, Path]:
        """Kind -> the output shown."""
        return {k: paths[0] for k, paths in self.found.outputs.items()}

    @property
    def name(self) -> str:
        """A short name for layer titles: ``image/preset`` of the resolved folder."""
        return self.found.name


def read_results(path: str | Path) -> ResultsFolder:
    """Find the outputs of a results folder and follow their provenance to the inputs."""
    found = outputs_in(path)
    if not found.outputs:
        names = ", ".join(kind.default for kind in KIND.values())
        raise CellvaeError(f"{path}: not a cellvae results folder (none of {names})")
    res = ResultsFolder(found)
    files = res.files
    missing = [KIND[k].default for k in ("recon", "blurmap", "blur", "cells") if k not in files]
    if missing:
        res.problems.append(f"{res.path}: no {', '.join(missing)}; showing the rest")
    res.problems += [f"{res.path}: {line}" for line in found.listing(choices_only=True)]
    if "blur" in files:
        try:
            res.blur = json.loads(files["blur"].read_text())
        except (OSError, ValueError) as err:
            res.problems.append(f"{files['blur']}: unreadable ({err})")
    candidates = [
        ("recon", _input(found, "recon", "input")),
        ("cells", _input(found, "cells", "input")),
        ("blurmap", _input(found, "blurmap", "original")),
        # cellvae blur's summary names its original as given on the command line
        ("blur", _relative((res.blur or {}).get("original"), res.path)),
    ]
    res.original = _existing(res, "original image", candidates)
    if "cells" in files:
        res.labels = _existing(res, "labels", [("cells", _input(found, "cells", "labels"))])
    res.cells_ckpt = _local_file(_input(found, "cells", "ckpt"))
    res.ckpt = _local_file(_input(found, "recon", "ckpt")) or res.cells_ckpt
    res.ckpt = res.ckpt or _local_file(_input(found, "samples", "ckpt"))
    return res


def _local_file(path: Path | str | None) -> Path | None:
    """``path`` if it is a local file that exists (a checkpoint to load), else None."""
    return path if isinstance(path, Path) and path.exists() else None


def _input(found: Found, kind: str, role: str) -> Path | str | None:
    """An input named by provenance: a path, or a URL (``https://``, ``s3://``) as it is."""
    from cellvae.io.remote import as_location

    value = found.inputs(kind).get(role)
    return as_location(value) if value else None


def _existing(res: ResultsFolder, what: str, candidates: list[tuple[str, Path | None]]):
    """The first candidate path that exists; a problem line if none does."""
    files = res.files
    named = [(kind, p) for kind, p in candidates if kind in files and p is not None]
    from cellvae.io.remote import is_url

    for _, p in named:
        if is_url(p) or p.exists():  # a URL is tried when its layer is read
            return p
    if named:
        kind, p = named[0]
        res.problems.append(f"{files[kind]}: its {what} {p} does not exist")
    elif any(kind in files for kind, _ in candidates):
        kind = next(k for k, _ in candidates if k in files)
        res.problems.append(f"{files[kind]}: no provenance naming its {what}")
    return None


def results_layers(path: str | Path) -> tuple[list[LayerData], list[str]]:
    """Layer data for a results folder, and the problems met (one line each).

    Layers, bottom to top: original (magenta) and reconstruction (green), added so that
    agreement looks white; the blur map (HF power ratio, 0..1, ``inferno``, translucent);
    the prior samples (hidden); the labels with the cells table as ``features`` last, so
    napari makes them the active layer and a click on a cell selects it at once.
    ``metadata["ckpt"]`` names the model to use with each layer: the labels layer's is the
    one that made the table's codes, the others' that of the reconstruction.
    """
    res = read_results(path)
    problems = list(res.problems)
    layers: list[LayerData] = []
    tag = res.name
    files = res.files
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

    grid = None
    if res.original is not None:
        try:
            grid = open_levels(res.original)[0].spatial()
        except CellvaeError:
            grid = None  # image_layer below says why
        add(image_layer, res.original, f"original [{tag}]", colormap="magenta", **common)
    if "recon" in files:
        add(image_layer, files["recon"], f"reconstruction [{tag}]", colormap="green", **common)
    if "blurmap" in files:
        layer = add(
            image_layer,
            files["blurmap"],
            f"blur map [{tag}]",
            colormap="inferno",
            contrast_limits=[0.0, 1.0],
            opacity=0.5,
            blending="translucent",
            visible=False,
        )
        if layer is not None:
            layer[1]["metadata"]["blur"] = res.blur
            layer[1]["metadata"]["cellvae_kind"] = "blur map"
            if not any(layer[1]["translate"]):
                axes = layer[1]["metadata"]["axes"]
                shift = blur_translation(res.blur, layer[1]["scale"], axes)
                if shift is not None:
                    layer[1]["translate"] = shift
    if "samples" in files:
        add(samples_layer, files["samples"], f"prior samples [{tag}]")
    if "cells" in files:
        _add_cells(res, grid, tag, add, problems)
    for layer in layers:
        ckpt = res.cells_ckpt if layer[2] == "labels" and res.cells_ckpt else res.ckpt
        layer[1]["metadata"]["ckpt"] = str(ckpt) if ckpt else None
    return layers, problems


def _add_cells(res: ResultsFolder, grid: Grid | None, tag: str, add, problems) -> None:
    """The labels layer with the cells table, checked against each other."""
    cells = res.files["cells"]
    try:
        table = read_table(cells)
    except CellvaeError as err:
        problems.append(str(err))
        table = None
    if res.labels is None:
        return
    layer = add(labels_layer, res.labels, table, f"cells [{tag}]", grid)
    if layer is None or table is None:
        return
    mismatch = check_table_labels(table, layer[0])
    if mismatch:
        problems.append(f"{cells}: {mismatch}")
        layer[1].pop("features")
    else:
        layer[1]["metadata"]["cells_table"] = str(cells)
