"""npe2 reader: a cellvae results folder (or a parent of ``<image>/<preset>/`` results).

The manifest declares no filename patterns, only ``accepts_directories``, so napari never
offers this reader for an ordinary file (a PNG or TIFF opens as without the plugin). Among
folders it claims only those holding cellvae outputs, whatever their name (``run_beta0.5``
is a folder, not a file with a suffix); plain OME-Zarr images are napari-ome-zarr's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cellvae.napari.messages import show_problem
from cellvae.napari.results import LayerData, find_results, results_layers


def get_reader(path: str | list[str]) -> Callable[..., list] | None:
    """The reader function if ``path`` holds cellvae results, else None (another reader)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not path.is_dir() or _is_zarr(path) or not find_results(path):
        return None
    return read_results_folder


def _is_zarr(path: Path) -> bool:
    """A Zarr group or array (v2 or v3) is an image for napari-ome-zarr, never results."""
    return any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))


def read_results_folder(path: str | list[str]) -> list[LayerData]:
    """Layers of every results folder under ``path``; problems become notifications."""
    path = path[0] if isinstance(path, list) else path
    layers: list[LayerData] = []
    for folder in find_results(path):
        found, problems = results_layers(folder)
        layers.extend(found)
        for problem in problems:
            show_problem(problem)
    return layers or [(None,)]


def open_results(viewer, path: str) -> list:
    """Add the layers of the results under ``path`` to ``viewer``; return the new layers."""
    added = []
    for data, kwargs, kind in read_results_folder(path):
        if data is not None:
            added.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return added
