"""The plugin in a real viewer (Xvfb): each widget driven as a user would, with screenshots.

Each test saves a screenshot of its widget in use (in the test's temporary folder, so a test
run leaves the work tree clean) and asserts it is not blank. The README's screenshots come
from the real demo instead (``test_demo_screenshots.py``).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari", reason="needs the napari extra: pip install 'cellvae[napari]'")
pytestmark = pytest.mark.gui


def _shot(viewer, qtbot) -> np.ndarray:
    """The whole window (docked widgets included) once Qt has laid it out."""
    qtbot.wait(300)
    return viewer.screenshot(canvas_only=False, flash=False)


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: the test's temporary folder."""
    return tmp_path


def _save(array: np.ndarray, folder: Path, name: str) -> Path:
    """Save a screenshot as a small palette PNG; check it is not blank."""
    from PIL import Image

    rgb = np.asarray(array)[..., :3]
    assert rgb.std() > 10, f"{name}: screenshot is blank"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    image = Image.fromarray(rgb.astype(np.uint8))
    image.quantize(colors=96).save(path, optimize=True)
    return path


@pytest.fixture
def loaded(make_napari_viewer, results_dir):
    """A shown viewer with the results folder opened as ``cellvae view`` opens it."""
    from cellvae.napari.reader import open_results

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1440, 820)
    open_results(viewer, str(results_dir.parent.parent))
    return viewer


def _as_plugin_sees_it(viewer):
    """The viewer as napari hands it to a plugin widget (public attributes only)."""
    try:
        from napari.utils._proxies import PublicOnlyProxy
    except ImportError:  # napari moved it: the widgets still get a viewer
        return viewer
    return PublicOnlyProxy(viewer)


def _last_notification() -> str:
    from napari.utils.notifications import notification_manager

    return str(notification_manager.records[-1].message)


def _cells(viewer):
    return next(layer for layer in viewer.layers if layer.name.startswith("cells"))


def test_reader_gives_layers_on_one_physical_grid(loaded):
    names = [layer.name.split(" [")[0] for layer in loaded.layers]
    assert names == ["original", "reconstruction", "blur map", "prior samples", "cells"]
    cells = _cells(loaded)
    assert list(cells.features["index"]) == np.unique(np.asarray(cells.data))[1:].tolist()
    blur = loaded.layers[2]
    np.testing.assert_allclose(blur.scale, [4.0, 4.0])
    np.testing.assert_allclose(blur.translate, [1.75, 1.75])


def test_latent_browser_selection_highlights_cells_both_ways(loaded, qtbot, shots):
    from cellvae.napari.latent_browser import LatentBrowser

    widget = LatentBrowser(_as_plugin_sees_it(loaded))
    loaded.window.add_dock_widget(widget, name="Latent browser", area="right")
    cells = _cells(loaded)
    table = cells.features
    assert widget.x_box.currentText() == "pca_0"
    xy = table[["pca_0", "pca_1"]].to_numpy()
    lo, hi = xy.min(0), np.median(xy, 0)
    widget.select_box(lo, hi)
    expected = table["index"][(xy <= hi).all(1)].to_numpy()
    painted = widget.highlight_layer.data
    assert sorted(np.unique(np.asarray(cells.data)[np.asarray(painted) == 1])) == sorted(expected)
    assert widget.gallery.count() > 0
    _save(_shot(loaded, qtbot), shots, "latent_browser.png")
    # picking a cell in the viewer selects its point, and only it (shift adds); the real
    # mouse events are in test_browser_gui.py
    at = table.loc[table["index"] == 3, ["centroid_y", "centroid_x"]].to_numpy()[0]
    widget.pick_at(cells.data_to_world(at))
    assert np.flatnonzero(widget.mask).tolist() == np.flatnonzero(table["index"] == 3).tolist()
    assert set(np.unique(np.asarray(cells.data)[np.asarray(widget.highlight_layer.data) == 1])) == {
        3
    }
    widget.pick_at(cells.data_to_world(table.loc[0, ["centroid_y", "centroid_x"]]), add=True)
    assert widget.mask.sum() == 2 and widget.mask[0]
    # a box dragged on the plot canvas selects the points under it
    scatter = widget.scatter
    qtbot.wait(100)
    to_pixels = scatter.canvas.scene.node_transform(scatter.view.scene).imap
    ordered = np.sort(xy, axis=0)
    span = ordered[-1] - ordered[0]
    box = [ordered[0] - 0.1 * span, (ordered[3] + ordered[4]) / 2]  # no point on its edges
    corners = [to_pixels([x, y, 0, 1])[:2] for x, y in box]
    widget.mode_box.setCurrentText("box")
    scatter._mouse_press(SimpleNamespace(pos=corners[0], button=1))
    scatter._mouse_move(SimpleNamespace(pos=corners[1], is_dragging=True))
    scatter._mouse_release(SimpleNamespace(pos=corners[1], button=1))
    inside = (xy <= box[1]).all(1)
    assert 0 < inside.sum() < len(xy)
    assert sorted(widget.ids[widget.mask]) == sorted(table["index"][inside])
    # a lasso around everything selects every cell
    widget.select_lasso([[-1e3, -1e3], [1e3, -1e3], [1e3, 1e3], [-1e3, 1e3]])
    assert widget.mask.all()


def test_blur_inspector_runs_to_completion_and_jumps(loaded, qtbot, shots):
    from cellvae.napari.blur_inspector import BlurInspector

    widget = BlurInspector(_as_plugin_sees_it(loaded))
    loaded.window.add_dock_widget(widget, name="Blur inspector", area="right")
    assert widget.original_box.currentText().startswith("original")
    assert widget.recon_box.currentText().startswith("reconstruction")
    widget.window.setValue(16)
    widget.compute()
    qtbot.waitUntil(lambda: widget.report is not None, timeout=20_000)
    qtbot.waitUntil(lambda: widget.progress.value() == 100, timeout=5_000)
    maps = [layer for layer in loaded.layers if layer.name.startswith("blur map")]
    assert len(maps) == 1  # the results' blur map layer now shows the computed map
    overlay = maps[0]
    np.testing.assert_allclose(overlay.scale, [4.0, 4.0])
    np.testing.assert_allclose(overlay.translate, [1.75, 1.75])
    assert widget.regions.count() == 5
    _save(_shot(loaded, qtbot), shots, "blur_inspector.png")
    widget.regions.setCurrentRow(0)
    bmap = widget.report.map
    centre = np.asarray(widget.report.worst[0]["index"]) * bmap.stride + (bmap.stride - 1) / 2
    from cellvae.napari.navigate import camera_of

    np.testing.assert_allclose(camera_of(loaded).center[-2:], centre * 0.5)
    from cellvae.napari.navigate import OUTLINE

    box = loaded.layers[OUTLINE].data[0]  # the region's window, outlined on the image grid
    np.testing.assert_allclose(box.max(0) - box.min(0), [bmap.window, bmap.window])
    assert widget.summary.text().startswith("share of the original's resolvable structure kept")
    # with a checkpoint: reconstruct what is in view, then map it
    assert widget.ckpt.text().endswith("model.ckpt")  # from the results' provenance
    first = widget.report
    widget.reconstruct_view()
    qtbot.waitUntil(lambda: widget.report is not first, timeout=30_000)
    crop = loaded.layers["original (in view)"].data
    recon = loaded.layers["reconstruction (in view)"].data
    assert crop.shape == recon.shape and crop.size > 0
    from cellvae.napari.blur import reconstruct_crop
    from cellvae.napari.blur_inspector import _stats_of

    expected = reconstruct_crop(widget.ckpt.text(), crop, _stats_of(loaded.layers[0]))
    np.testing.assert_allclose(recon, expected, rtol=1e-5)
    assert np.abs(recon - crop).mean() > 1  # an untrained model does not copy its input
    assert widget.report.map.shape == crop.shape


def _done(widget, qtbot, name: str, timeout: int = 30_000) -> None:
    """Wait for the explorer's background job to finish and layer ``name`` to be shown."""
    qtbot.waitUntil(lambda: not widget.jobs.busy and name in widget.viewer.layers, timeout=timeout)


def test_latent_explorer_prototype_interpolation_slider(loaded, qtbot, tmp_path, shots):
    from cellvae.napari.explore import Explorer, codes_of
    from cellvae.napari.latent_browser import LatentBrowser
    from cellvae.napari.latent_explorer import LatentExplorer
    from tests.inference.helpers import save_checkpoint

    browser = LatentBrowser(_as_plugin_sees_it(loaded))
    widget = LatentExplorer(_as_plugin_sees_it(loaded))
    loaded.window.add_dock_widget(widget, name="Latent explorer", area="right")
    assert widget.ckpt.text().endswith("model.ckpt")
    widget.prototype()
    _done(widget, qtbot, "prototype (z = 0)")
    assert loaded.layers["prototype (z = 0)"].data.shape == (16, 16)
    browser.pick([2, 5])
    widget.use_selection()
    assert (widget.cell_a.value(), widget.cell_b.value()) == (2, 5)
    widget.interpolate()
    _done(widget, qtbot, "interpolation 2 -> 5")
    strip = loaded.layers["interpolation 2 -> 5"].data
    assert strip.shape == (18, 7 * 18)  # seven 16 px decodings in a row, 2 px gaps
    stack = np.stack([strip[:16, i * 18 : i * 18 + 16] for i in range(7)])
    model = Explorer.load(widget.ckpt.text(), 2, loaded.layers[0].metadata["path"])
    a, b = codes_of(_cells(loaded).features, [2, 5])
    np.testing.assert_allclose(stack[0], model.interpolate(a, b, 2)[0], rtol=1e-5)
    np.testing.assert_allclose(stack[-1], model.interpolate(a, b, 2)[1], rtol=1e-5)
    widget.dim.setValue(1)
    widget.slider.setValue(50)
    _done(widget, qtbot, "latent traversal")
    layer = loaded.layers["latent traversal"]
    assert layer.metadata["traversal"] == (1, 1.5)
    expected = model.traverse(np.zeros(model.latent_dim), 1, [1.5])[0]
    np.testing.assert_allclose(layer.data, expected, rtol=1e-5)
    qtbot.wait(300)
    loaded.reset_view()  # fit again now that the dock has taken its share of the window
    _save(_shot(loaded, qtbot), shots, "latent_explorer.png")
    # a 3D checkpoint on this 2D image: one clear notification, no new layer
    widget.ckpt.setText(str(save_checkpoint(tmp_path / "3d.ckpt", ndim=3)))
    before = len(loaded.layers)
    widget.prototype()
    qtbot.waitUntil(lambda: not widget.jobs.busy, timeout=30_000)
    assert len(loaded.layers) == before
    assert "a 3D model; the image is 2D" in _last_notification()


def test_view_docks_three_widgets_and_loads_the_folder(make_napari_viewer, results_dir):
    from cellvae.cli.view import open_viewer

    viewer, widgets = open_viewer(str(results_dir), viewer=make_napari_viewer())
    assert [type(w).__name__ for w in widgets] == [
        "LatentBrowser",
        "BlurInspector",
        "LatentExplorer",
    ]
    assert set(viewer.window.dock_widgets) >= {
        "Latent browser",
        "Blur inspector",
        "Latent explorer",
    }
    assert widgets[0].layer is not None and len(widgets[0].xy) == 9


def test_reader_problems_become_notifications_not_tracebacks(tmp_path, rng):
    from napari.utils.notifications import notification_manager

    from cellvae.napari.reader import read_results_folder
    from tests.napari.helpers import write_results

    out = write_results(tmp_path, rng, drop=("blurmap.ome.zarr",))
    before = len(notification_manager.records)
    layers = read_results_folder(str(out))
    assert len(layers) == 4
    assert [str(n.message) for n in notification_manager.records[before:]] == [
        f"{out}: no blurmap.ome.zarr; showing the rest"
    ]


def test_blur_inspector_shows_the_stored_summary_its_ranking_and_one_colourbarred_layer(
    make_napari_viewer, tmp_path, rng, qtbot
):
    """Issue 21 item 7: the stored blur.json on open, the ranking quantity with its meaning,
    a colourbar, and recomputing reuses the blur map layer (no second one)."""
    import json

    from cellvae.cli import main
    from cellvae.napari.blur import RANKING
    from cellvae.napari.blur_inspector import BlurInspector
    from cellvae.napari.reader import open_results
    from tests.napari.helpers import write_results

    out = write_results(tmp_path, rng)
    original = str(tmp_path / "inputs" / "image.ome.zarr")
    argv = ["blur", original, str(out / "recon.ome.zarr"), "-o", str(out / "blurmap.ome.zarr")]
    argv += ["--summary", str(out / "blur.json"), "--window", "16", "--overwrite"]
    assert main(argv) == 0  # the folder's map and summary as cellvae blur writes them now
    stored = json.loads((out / "blur.json").read_text())
    viewer = make_napari_viewer(show=True)
    open_results(viewer, str(out))
    widget = BlurInspector(_as_plugin_sees_it(viewer))
    viewer.window.add_dock_widget(widget, name="Blur inspector", area="right")
    widget.window.setValue(16)  # as the command ran
    text = widget.summary.text()
    assert text.startswith("stored blur.json: share of the original's resolvable structure kept")
    assert stored["resolution_sentence"] in text and "camera: gain" in text
    assert widget.ranking.text() == RANKING and "lowest share" in RANKING
    assert widget.regions.count() == len(stored["worst_regions"]) > 0
    first = stored["worst_regions"][0]
    assert widget.regions.item(0).text().startswith(f"kept {first['share_kept']:.2f} (signal")
    maps = [layer for layer in viewer.layers if layer.name.startswith("blur map")]
    assert len(maps) == 1 and maps[0].colorbar.visible
    widget.original_box.setCurrentText(
        next(la.name for la in viewer.layers if la.name.startswith("original"))
    )
    assert not widget.original_box.currentText().startswith("blur map")
    for _ in range(2):
        before = widget.report
        widget.compute()
        qtbot.waitUntil(lambda before=before: widget.report is not before, timeout=20_000)
        maps = [layer for layer in viewer.layers if layer.name.startswith("blur map")]
        assert len(maps) == 1 and maps[0].colorbar.visible and maps[0].visible
        np.testing.assert_array_equal(maps[0].data, widget.report.map.share.astype(np.float32))
    assert widget.summary.text().startswith("share of the original's resolvable structure kept")
    assert widget.report.figures["share_of_resolvable_structure_kept"] == pytest.approx(
        stored["share_of_resolvable_structure_kept"]
    )
    widget.regions.setCurrentRow(0)
    from cellvae.napari.navigate import camera_of

    centre = np.asarray(widget.report.worst[0]["centre"])
    np.testing.assert_allclose(camera_of(viewer).center[-2:], centre * 0.5)
