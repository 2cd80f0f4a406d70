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


def open_viewer(results: str | None, viewer=None):
    """``viewer`` (default: a new one) with ``results`` loaded and the three widgets docked."""
    import importlib

    import napari

    from cellvae.errors import CellvaeError
    from cellvae.napari.reader import open_results
    from cellvae.napari.results import find_results

    if results is not None and not find_results(results):
        raise CellvaeError(
            f"{results}: no cellvae results here (recon.ome.zarr, cells.parquet, blur.json, "
            "...); run `make demo` or the workflow first"
        )
    viewer = napari.Viewer(title="cellvae") if viewer is None else viewer
    if results is not None:
        open_results(viewer, results)
    widgets = []
    for target, title in WIDGETS:
        module, name = target.split(":")
        widget = getattr(importlib.import_module(module), name)(viewer)
        viewer.window.add_dock_widget(widget, name=title, area="right", tabify=True)
        widgets.append(widget)
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
