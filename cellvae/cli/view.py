"""``cellvae view``: open napari on a results folder with the plugin's three widgets docked."""

from __future__ import annotations

import argparse

HELP = "open napari on a results folder (e.g. runs/demo) with the cellvae widgets docked"

#: (widget class path, dock title), in the order they are docked.
WIDGETS = (
    ("cellvae.napari.latent_browser:LatentBrowser", "Latent browser"),
    ("cellvae.napari.blur_inspector:BlurInspector", "Blur inspector"),
    ("cellvae.napari.latent_explorer:LatentExplorer", "Latent explorer"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae view``."""
    parser.add_argument(
        "results",
        nargs="?",
        help="results folder (recon.ome.zarr, cells.parquet, ...) or a parent of "
        "<image>/<preset>/ results; empty: just the widgets",
    )


def open_viewer(results: str | None, viewer=None, say=print):
    """``viewer`` (default: a new one) with ``results`` loaded and the three widgets docked.

    The results are found as ``cellvae report`` finds them (:mod:`cellvae.discover`) and
    listed through ``say``. The cells layer is the active one (a click selects a cell), the
    latent browser's tab is on top, and a scale bar shows the layers' physical units.
    """
    import importlib

    import napari

    from cellvae.discover import find_results
    from cellvae.errors import CellvaeError
    from cellvae.napari.layer_choice import is_cells_layer
    from cellvae.napari.reader import open_results

    found = find_results(results) if results is not None else []
    if results is not None and not found:
        raise CellvaeError(
            f"{results}: no cellvae results here (recon.ome.zarr, cells.parquet, blur.json, "
            "...); run `make demo` or the workflow first"
        )
    for folder in found:
        for line in folder.listing():
            say(f"found in {folder.folder}: {line}")
    viewer = napari.Viewer(title="cellvae") if viewer is None else viewer
    if results is not None:
        open_results(viewer, results)
    widgets, docks = [], []
    for target, title in WIDGETS:
        module, name = target.split(":")
        widget = getattr(importlib.import_module(module), name)(viewer)
        docks.append(viewer.window.add_dock_widget(widget, name=title, area="right", tabify=True))
        widgets.append(widget)
    # tabified docks show the last one added; the browser comes first (once Qt has laid out
    # the tabs, so also on the next event-loop turn)
    from qtpy.QtCore import QTimer

    docks[0].raise_()
    QTimer.singleShot(0, docks[0].raise_)
    cells = next((layer for layer in viewer.layers if is_cells_layer(layer)), None)
    if cells is not None:
        viewer.layers.selection.active = cells
    viewer.scale_bar.visible = True  # in the layers' physical units (pixels if they have none)
    return viewer, widgets


def run(args: argparse.Namespace) -> int:
    """Open the viewer and block until it is closed."""
    from cellvae.errors import CellvaeError

    try:
        import napari
    except ImportError:
        raise CellvaeError("napari is not installed: pip install 'cellvae[napari]'") from None
    open_viewer(args.results)
    napari.run()
    return 0
