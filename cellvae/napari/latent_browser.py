"""Latent browser: the cells' embedding as a scatter linked both ways to the labels layer.

Choose a labels layer whose ``features`` hold a ``cellvae embed`` table (the results reader
attaches ``cells.parquet``). Selecting points (click, box, lasso) paints the chosen cells in
a "selected cells" layer above the labels, can centre the view on them, and shows a gallery
of their crops beside the reconstruction; clicking a cell in the viewer selects its point
(on release, and only when the mouse did not move: a pan that starts on a cell keeps the
selection; shift adds). A selection lasts: changing the plotted axes or the colour redraws it
at the new places, and *add selection to class* keeps it in the layer's ``features``
(:mod:`.classes_panel`). All the work is in :mod:`.selection`.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cellvae.napari._scatter import ScatterCanvas
from cellvae.napari.classes_panel import ClassPanel
from cellvae.napari.gallery import Gallery
from cellvae.napari.layer_choice import (
    LayerChoice,
    add_beside,
    is_cells_layer,
    is_source_image,
    same_layer,
)
from cellvae.napari.layer_data import check_table_labels
from cellvae.napari.messages import show_problem
from cellvae.napari.navigate import go_to
from cellvae.napari.selection import (
    centre_of,
    highlight,
    in_box,
    in_lasso,
    nearest,
    rows_of_labels,
    selection_lut,
)

SELECTED_RGBA = (1.0, 0.65, 0.0, 1.0)
#: a press and release further apart than this (screen pixels) is a drag, not a click
CLICK_SLOP_PX = 4


def default_axes(columns: list[str]) -> tuple[str, str]:
    """UMAP columns when the table has them, else PCA, else the first two numeric columns."""
    for a, b in (("umap_0", "umap_1"), ("pca_0", "pca_1"), ("z_mean_0", "z_mean_1")):
        if a in columns and b in columns:
            return a, b
    return (columns[0], columns[min(1, len(columns) - 1)]) if columns else ("", "")


class LatentBrowser(QWidget):
    """The dock widget; ``select_box``/``select_lasso``/``select_click``/``pick`` drive it."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.layer = None
        self.table = None
        self.ids = np.zeros(0, np.int64)
        self.xy = np.zeros((0, 2))
        self.mask = np.zeros(0, bool)
        self.highlight_layer = None
        self._label_top = 0
        self.scatter = ScatterCanvas(self._on_plot_select)
        self.x_box, self.y_box, self.colour_box = (QComboBox() for _ in range(3))
        self.mode_box = QComboBox()
        self.mode_box.addItems(["lasso", "box", "click", "pan"])
        self.jump = QCheckBox("centre the view on the selection")
        self.jump.setChecked(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        clear = QPushButton("clear selection")
        clear.clicked.connect(lambda: self.select(np.zeros(len(self.ids), bool), "clear"))
        self.gallery = Gallery()
        self.classes = ClassPanel(self)
        self.labels = LayerChoice(napari_viewer, is_cells_layer, on_change=self._use_layer)
        form = QFormLayout()
        form.addRow("labels", self.labels.box)
        form.addRow("x", self.x_box)
        form.addRow("y", self.y_box)
        form.addRow("colour", self.colour_box)
        form.addRow("select", self.mode_box)
        row = QHBoxLayout()
        row.addWidget(self.jump)
        row.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.scatter.native, stretch=1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.classes)
        layout.addWidget(QLabel("selected cells: image above, reconstruction below"))
        layout.addWidget(self.gallery)

        for box in (self.x_box, self.y_box, self.colour_box):
            box.currentTextChanged.connect(self._replot)
        self.mode_box.currentTextChanged.connect(self.scatter.set_mode)
        self.scatter.set_mode("lasso")
        napari_viewer.mouse_drag_callbacks.append(self._on_viewer_drag)

    # -- layers and table ---------------------------------------------------------------
    def _use_layer(self, layer) -> None:
        if layer is None or same_layer(layer, self.layer):
            return
        table = layer.features
        if "index" not in table:
            show_problem(f"{layer.name}: its features have no 'index' column (the label id)")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        if data.size <= 50_000_000:
            mismatch = check_table_labels(table, data)
            if mismatch:
                show_problem(f"{layer.name}: {mismatch}")
                return
        self.layer, self.table = layer, table.reset_index(drop=True)
        self.ids = self.table["index"].to_numpy(np.int64)
        self.mask = np.zeros(len(self.ids), bool)
        self._label_top = int(data.max()) if isinstance(data, np.ndarray) and data.size else 0
        numeric = [
            c for c in self.table.columns if c != "index" and self.table[c].dtype.kind in "fiu"
        ]
        x, y = default_axes(numeric)
        for box, choice in ((self.x_box, x), (self.y_box, y), (self.colour_box, "")):
            box.blockSignals(True)
            box.clear()
            if box is self.colour_box:
                box.addItem("")
            box.addItems(numeric)
            box.setCurrentText(choice)
            box.blockSignals(False)
        self._replot()
        self.classes.refresh()

    def _replot(self, *_) -> None:
        """Draw the chosen columns; the selection stays and is drawn at its new places."""
        x, y = self.x_box.currentText(), self.y_box.currentText()
        if self.table is None or not x or not y:
            return
        self.xy = self.table[[x, y]].to_numpy(float)
        colour = self.colour_box.currentText()
        values = self.table[colour].to_numpy(float) if colour else None
        self.scatter.set_points(self.xy, values, colour)
        self.scatter.set_titles(x, y)
        if len(self.mask) != len(self.xy):
            self.mask = np.zeros(len(self.xy), bool)
        self.scatter.set_selected(self.mask)
        self._say()

    def _say(self) -> None:
        n = int(self.mask.sum())
        total = len(self.mask)
        self.status.setText(f"{n:,} of {total:,} cells selected" if n else f"{total:,} cells")

    # -- selection ----------------------------------------------------------------------
    def select_box(self, corner_a, corner_b) -> None:
        """Select the points in a box (plot units)."""
        self.select(in_box(self.xy, corner_a, corner_b), "plot")

    def select_lasso(self, vertices) -> None:
        """Select the points in a polygon ``(V, 2)`` (plot units)."""
        self.select(in_lasso(self.xy, np.asarray(vertices), self.scatter.grid), "plot")

    def select_click(self, point, radius: float | None = None) -> None:
        """Select the point nearest to ``point`` (within ``radius``, default 8 screen px)."""
        radius = 8 * self.scatter.pixel_size() if radius is None else radius
        i = nearest(self.xy, point, radius)
        mask = np.zeros(len(self.xy), bool)
        if i is not None:
            mask[i] = True
        self.select(mask, "plot")

    def pick(self, labels: list[int], add: bool = False) -> None:
        """Select the cells with these label ids, as picking them in the viewer does."""
        mask = rows_of_labels(self.ids, labels)
        self.select(mask | self.mask if add else mask, "viewer")

    def _on_plot_select(self, kind: str, geometry: np.ndarray) -> None:
        if kind == "click":
            self.select_click(geometry[0])
        elif kind == "box":
            self.select_box(geometry[0], geometry[-1])
        else:
            self.select_lasso(geometry)

    def _on_viewer_drag(self, viewer, event):
        """Pick the cell under a click released where it was pressed (not after a pan).

        Runs for any active layer in pan/zoom mode, so that a click selects a cell however
        the layer list was last touched; a layer in a drawing mode keeps its clicks.
        """
        active = viewer.layers.selection.active
        if self.layer is None or getattr(active, "mode", "pan_zoom") != "pan_zoom":
            return
        if event.button != 1:
            return
        start, add = np.asarray(event.pos, float), "Shift" in event.modifiers
        moved = False
        yield
        while event.type == "mouse_move":
            moved = moved or np.abs(np.asarray(event.pos, float) - start).max() > CLICK_SLOP_PX
            yield
        if event.type == "mouse_release" and not moved:
            self.pick_at(event.position, event.view_direction, event.dims_displayed, add)

    def pick_at(self, position, view_direction=None, dims_displayed=None, add=False) -> None:
        """Select the cell of the labels layer at world ``position`` (none: clear)."""
        value = self.layer.get_value(
            position, view_direction=view_direction, dims_displayed=dims_displayed, world=True
        )
        if isinstance(value, tuple):  # a multiscale layer: (level, value)
            value = value[-1]
        if value:
            self.pick([int(value)], add=add)
        elif not add:
            self.select(np.zeros(len(self.ids), bool), "viewer")

    def select(self, mask: np.ndarray, source: str) -> None:
        """Make ``mask`` the selection: plot, highlight layer, gallery and (maybe) the view."""
        self.mask = mask
        if self.layer is not None:
            self.layer.metadata["cellvae_selection"] = self.ids[mask][:1000].tolist()
        self.scatter.set_selected(mask)
        self.update_highlight()
        self._say()
        if source in ("plot", "classes") and self.jump.isChecked():
            self.jump_to_selection()
        self.update_gallery()

    def update_highlight(self) -> None:
        """Paint the selected cells into the "selected cells" layer (not made active)."""
        if self.layer is None:
            return
        from napari.utils.colormaps import Colormap

        data = self.layer.data[0] if self.layer.multiscale else self.layer.data
        painted = highlight(data, selection_lut(self.ids, self.mask, self._label_top + 1))
        if self.highlight_layer is None or self.highlight_layer not in self.viewer.layers:
            colours = Colormap([(0, 0, 0, 0), SELECTED_RGBA], name="cellvae selection")
            self.highlight_layer = add_beside(
                self.viewer,
                painted,
                name="selected cells",
                scale=self.layer.scale,
                translate=self.layer.translate,
                units=self.layer.units,
                axis_labels=self.layer.axis_labels,
                colormap=colours,
                contrast_limits=(0, 1),
                opacity=0.9,
                blending="translucent",
                interpolation2d="nearest",
                metadata={"cellvae_kind": "selection"},
            )
        else:
            self.highlight_layer.data = painted

    def jump_to_selection(self) -> None:
        """Centre the view on the mean centroid of the selected cells."""
        axes = (self.layer.metadata or {}).get("axes") or "zyx"[-self.layer.ndim :]
        centre = centre_of(self.table, self.mask, axes[-self.layer.ndim :])
        if centre is None:
            return
        go_to(self.viewer, self.layer, centre)

    def _image_layers(self):
        """The original and the reconstruction to crop (by the reader's names), else any."""
        images = [layer for layer in self.viewer.layers if is_source_image(layer)]
        original = next((i for i in images if i.name.startswith("original")), None)
        recon = next((i for i in images if i.name.startswith("reconstruction")), None)
        if original is None and images:
            original = images[0]
        return original, recon

    def update_gallery(self) -> None:
        """Thumbnails of the first selected cells: original crop above its reconstruction."""
        if self.layer is None:
            return
        rows = np.flatnonzero(self.mask)
        self.gallery.show_cells(self.layer, self.table, self.ids, rows, self._image_layers())
