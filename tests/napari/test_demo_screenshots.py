"""The README's screenshots, taken from the real demo (trained model, real image).

Skipped unless ``CELLVAE_SCREENSHOTS`` names a results folder written by ``make demo``::

    make demo
    CELLVAE_SCREENSHOTS=runs/demo/nuclei2d/2d_hier_dlogistic \
        xvfb-run -a .venv/bin/pytest tests/napari/test_demo_screenshots.py

opens the folder as ``cellvae view runs/demo`` does, drives each widget as a user would and
writes ``docs/images/{latent_browser,blur_inspector,latent_explorer}.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

DEMO = os.environ.get("CELLVAE_SCREENSHOTS", "")
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(
        not DEMO or not Path(DEMO).is_dir(),
        reason="set CELLVAE_SCREENSHOTS to the nuclei run `make demo` wrote "
        "(runs/demo/nuclei2d/2d_hier_dlogistic)",
    ),
]


def _save(viewer, qtbot, name: str) -> None:
    """The whole window (docks included) as a small palette PNG in docs/images; not blank."""
    from PIL import Image

    qtbot.wait(500)  # Qt has laid out the docks: the canvas has its final size
    rgb = np.asarray(viewer.screenshot(canvas_only=False, flash=False))[..., :3]
    assert rgb.std() > 10, f"{name}: screenshot is blank"
    Image.fromarray(rgb.astype(np.uint8)).quantize(colors=128).save(IMAGES / name, optimize=True)


def _raise(viewer, title: str, qtbot) -> None:
    # the docked widget's wrapper (a QDockWidget) is its Qt parent
    viewer.window.dock_widgets[title].parent().raise_()
    qtbot.wait(200)


def test_screenshots_from_the_demo(make_napari_viewer, qtbot):
    from cellvae.cli.view import open_viewer
    from cellvae.napari.navigate import go_to

    viewer = make_napari_viewer(show=True, title="cellvae")
    viewer.window._qt_window.resize(1440, 860)
    viewer, (browser, blur, explorer) = open_viewer(DEMO, viewer=viewer, say=lambda line: None)
    qtbot.wait(500)
    viewer.reset_view()

    # latent browser: the cells in the lower-left quadrant of the first two components
    xy = np.asarray(browser.xy)
    browser.select_box(xy.min(0), np.quantile(xy, 0.3, axis=0))
    assert 0 < browser.mask.sum() < len(xy)
    qtbot.wait(300)
    viewer.reset_view()
    _save(viewer, qtbot, "latent_browser.png")

    # blur inspector: the map of the real reconstruction, the worst region outlined
    _raise(viewer, "Blur inspector", qtbot)
    blur.compute()
    qtbot.waitUntil(lambda: blur.report is not None, timeout=120_000)
    viewer.reset_view()
    _save(viewer, qtbot, "blur_inspector.png")

    # latent explorer: the prototype and an interpolation between two selected cells
    _raise(viewer, "Latent explorer", qtbot)
    original, cells = explorer.images.layer, explorer.cells.layer
    assert explorer.ckpt.text().endswith(".ckpt")
    explorer.prototype()
    qtbot.waitUntil(
        lambda: not explorer.jobs.busy and "prototype (z = 0)" in viewer.layers, timeout=120_000
    )
    # the brightest selected cell and the brightest other one: visible in the image's contrast
    level0 = [np.asarray(la.data[0] if la.multiscale else la.data) for la in (original, cells)]
    labels = level0[1].astype(np.int64).ravel()
    sums = np.bincount(labels, weights=level0[0].astype(float).ravel())
    counts = np.maximum(np.bincount(labels), 1)
    bright = (sums / counts)[browser.ids]
    ids = [
        int(browser.ids[np.where(group, bright, -np.inf).argmax()])
        for group in (browser.mask, ~browser.mask)
    ]
    browser.pick(ids)
    explorer.use_selection()
    explorer.interpolate()
    name = f"interpolation {ids[0]} -> {ids[1]}"
    qtbot.waitUntil(lambda: not explorer.jobs.busy and name in viewer.layers, timeout=120_000)
    for layer in viewer.layers:
        if layer.name.startswith(("blur map", "selected cells")):
            layer.visible = False
    qtbot.wait(500)  # the explorer brings its new layer in view on a later turn: then zoom
    strip = viewer.layers[name]
    go_to(viewer, strip, np.asarray(strip.data.shape) / 2, extent=np.asarray(strip.data.shape))
    _save(viewer, qtbot, "latent_explorer.png")
