"""The latent browser as a biologist uses it: real clicks and drags in the viewer, a selection
that lasts across re-plots and is kept as a class, a plot that reads right, drop-downs that
follow the layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.napari.helpers import mouse

pytest.importorskip("napari")
pytestmark = pytest.mark.gui


@pytest.fixture
def viewed(make_napari_viewer, results_dir, qtbot):
    """``cellvae view`` on the results folder, shown: (viewer, browser, explorer)."""
    from cellvae.cli.view import open_viewer

    viewer, widgets = open_viewer(str(results_dir), viewer=make_napari_viewer(show=True))
    viewer.window._qt_window.resize(1200, 800)
    qtbot.wait(200)
    viewer.reset_view()
    return viewer, widgets[0], widgets[2]


def _cells(viewer):
    return next(layer for layer in viewer.layers if layer.name.startswith("cells"))


def _centre(viewer, label: int) -> np.ndarray:
    cells = _cells(viewer)
    table = cells.features
    at = table.loc[table["index"] == label, ["centroid_y", "centroid_x"]].to_numpy()[0]
    return np.asarray(cells.data_to_world(at))


def _selected(browser) -> list[int]:
    return sorted(browser.ids[browser.mask].tolist())


def test_view_opens_with_the_cells_active_and_the_browser_on_top(viewed):
    viewer, _, _ = viewed
    assert viewer.layers.selection.active is _cells(viewer)
    dock = viewer.window._dock_widgets["Latent browser"]
    assert not dock.visibleRegion().isEmpty()  # its tab is the one shown
    assert viewer.window._dock_widgets["Latent explorer"].visibleRegion().isEmpty()
    assert viewer.scale_bar.visible
    assert tuple(viewer.dims.axis_labels[-2:]) == ("y", "x")


def test_a_click_selects_a_cell_and_a_drag_pans_without_changing_it(viewed, qtbot):
    viewer, browser, _ = viewed
    mouse(qtbot, viewer, _centre(viewer, 3))  # the first click after opening
    assert _selected(browser) == [3]
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    before = np.asarray(camera.center)
    mouse(qtbot, viewer, _centre(viewer, 5), _centre(viewer, 5) + 12)  # a pan starting on 5
    assert _selected(browser) == [3]
    assert not np.allclose(np.asarray(camera.center), before)  # it did pan
    mouse(qtbot, viewer, _centre(viewer, 7), shift=True)  # shift adds
    assert _selected(browser) == [3, 7]
    mouse(qtbot, viewer, _centre(viewer, 1))
    assert _selected(browser) == [1]


def test_a_selection_lasts_when_the_axes_and_colour_change(viewed, qtbot):
    _, browser, _ = viewed
    browser.pick([2, 4, 8])
    painted = np.asarray(browser.highlight_layer.data).copy()
    gallery = browser.gallery.count()
    browser.x_box.setCurrentText("z_mean_0")
    browser.colour_box.setCurrentText("size_voxels")
    assert _selected(browser) == [2, 4, 8]
    chosen = browser.scatter.chosen._data["a_position"][:, :2]
    expected = browser.table.loc[browser.mask, ["z_mean_0", "pca_1"]].to_numpy(np.float32)
    np.testing.assert_allclose(np.sort(chosen, 0), np.sort(expected, 0), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(browser.highlight_layer.data), painted)
    assert browser.gallery.count() == gallery > 0
    assert "3 of 9 cells selected" in browser.status.text()


def test_the_plot_has_titles_true_ticks_and_a_colour_bar(viewed, qtbot):
    viewer, browser, _ = viewed
    scatter = browser.scatter
    qtbot.wait(300)
    rect = scatter.view.camera.rect
    np.testing.assert_allclose(scatter.x_axis.axis.domain, (rect.left, rect.right), rtol=1e-3)
    np.testing.assert_allclose(scatter.y_axis.axis.domain, (rect.bottom, rect.top), rtol=1e-3)
    dock = viewer.window._dock_widgets["Latent browser"]
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [260], Qt.Orientation.Horizontal)
    qtbot.wait(300)
    rect = scatter.view.camera.rect
    np.testing.assert_allclose(scatter.x_axis.axis.domain, (rect.left, rect.right), rtol=1e-3)
    assert scatter.y_axis.width >= 60  # room for tick labels in a narrow dock
    assert scatter.x_axis.axis.axis_label == "pca_0"
    assert scatter.y_axis.axis.axis_label == "pca_1"
    assert not scatter.colorbar.visible
    browser.colour_box.setCurrentText("z_mean_2")
    assert scatter.colorbar.visible and scatter.colorbar.label.text == "z_mean_2"
    values = browser.table["z_mean_2"].to_numpy(float)
    assert scatter.limits == pytest.approx(tuple(np.percentile(values, [1, 99])))


def test_drop_downs_follow_renames_and_offer_no_blur_map_as_an_image(viewed, qtbot):
    viewer, browser, explorer = viewed
    cells = _cells(viewer)
    cells.name = "nuclei"
    assert browser.labels.box.currentText() == "nuclei"
    assert browser.layer is cells
    offered = [explorer.images.box.itemText(i) for i in range(explorer.images.box.count())]
    assert offered and not any(name.startswith("blur map") for name in offered)
    assert explorer.images.box.currentText().startswith("original")
    browser.pick([1])
    assert "selected cells" not in offered and explorer.cells.box.currentText() == "nuclei"


def test_classes_are_kept_in_the_features_saved_and_loaded_back(viewed, tmp_path):
    viewer, browser, _ = viewed
    browser.pick([2, 5])
    browser.classes.assign("round")
    browser.pick([7])
    browser.classes.assign("flat")
    cells = _cells(viewer)
    named = dict(zip(cells.features["index"], cells.features["class"]))
    assert {k: v for k, v in named.items() if v} == {2: "round", 5: "round", 7: "flat"}
    browser.x_box.setCurrentText("z_mean_1")  # a re-plot keeps the classes
    browser.classes.select_class("round")
    assert _selected(browser) == [2, 5]
    saved = browser.classes.save(tmp_path / "classes.csv")
    cells.features = cells.features.drop(columns="class")
    browser.select(np.zeros(len(browser.ids), bool), "clear")
    browser.classes.load(saved)
    assert _selected(browser) == [2, 5, 7]
    assert dict(zip(cells.features["index"], cells.features["class"]))[7] == "flat"
    table = Path(browser.layer.metadata["cells_table"])
    assert browser.classes.default_path() == table.with_name("classes.csv")
