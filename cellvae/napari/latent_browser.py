"""Latent browser: the cells' embedding as a scatter linked both ways to the labels layer.

Choose a labels layer whose ``features`` hold a ``cellvae embed`` table (the results reader
attaches ``cells.parquet``). Selecting points (click, box, lasso) paints the chosen cells in
a "selected cells" layer above the labels, can centre the view on them, and shows a gallery
of their crops beside the reconstruction; picking a cell in the viewer (click on the labels
layer, shift-click to add) selects its point. All the work is in :mod:`.selection`.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cellvae.napari._scatter import ScatterCanvas
from cellvae.napari.layer_data import check_table_labels
from cellvae.napari.messages import show_problem
from cellvae.napari.navigate import go_to
from cellvae.napari.selection import (
    centre_of,
    crop_plane,
    highlight,
    in_box,
    in_lasso,
    nearest,
    rows_of_labels,
    selection_lut,
    to_uint8,
)

#: cells shown in the gallery (the first selected ones, in table order).
GALLERY_CELLS = 6
THUMB_PX = 72


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

        self.layer_box, self.x_box, self.y_box, self.colour_box = (QComboBox() for _ in range(4))
        self.mode_box = QComboBox()
        self.mode_box.addItems(["lasso", "box", "click", "pan"])
        self.jump = QCheckBox("centre the view on the selection")
        self.jump.setChecked(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        clear = QPushButton("clear selection")
        clear.clicked.connect(lambda: self.select(np.zeros(len(self.ids), bool), "clear"))
        form = QFormLayout()
        form.addRow("labels", self.layer_box)
        form.addRow("x", self.x_box)
        form.addRow("y", self.y_box)
        form.addRow("colour", self.colour_box)
        form.addRow("select", self.mode_box)
        row = QHBoxLayout()
        row.addWidget(self.jump)
        row.addWidget(clear)
        self.gallery = QGridLayout()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.scatter.native, stretch=1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("selected cells: image above, reconstruction below"))
        layout.addLayout(self.gallery)

        self.layer_box.currentTextChanged.connect(self._use_layer)
        for box in (self.x_box, self.y_box, self.colour_box):
            box.currentTextChanged.connect(self._replot)
        self.mode_box.currentTextChanged.connect(self.scatter.set_mode)
        self.scatter.set_mode("lasso")
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # -- layers and table ---------------------------------------------------------------
    def _candidates(self) -> list[str]:
        from napari.layers import Labels

        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels)
            and len(layer.features)
            and layer is not self.highlight_layer
        ]

    def _refresh_layers(self, event=None) -> None:
        names = self._candidates()
        if names == [self.layer_box.itemText(i) for i in range(self.layer_box.count())]:
            return
        current = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        self.layer_box.blockSignals(False)
        if current in names:
            self.layer_box.setCurrentText(current)
        elif names:
            self._use_layer(names[0])

    def _use_layer(self, name: str) -> None:
        if not name or name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        table = layer.features
        if "index" not in table:
            show_problem(f"{name}: its features have no 'index' column (the label id)")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        if data.size <= 50_000_000:
            mismatch = check_table_labels(table, data)
            if mismatch:
                show_problem(f"{name}: {mismatch}")
                return
        if self.layer is not None and self._on_viewer_click in self.layer.mouse_drag_callbacks:
            self.layer.mouse_drag_callbacks.remove(self._on_viewer_click)
        self.layer, self.table = layer, table.reset_index(drop=True)
        self.ids = self.table["index"].to_numpy(np.int64)
        self._label_top = int(data.max()) if isinstance(data, np.ndarray) and data.size else 0
        layer.mouse_drag_callbacks.append(self._on_viewer_click)
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

    def _replot(self, *_) -> None:
        if self.table is None or not self.x_box.currentText() or not self.y_box.currentText():
            return
        self.xy = self.table[[self.x_box.currentText(), self.y_box.currentText()]].to_numpy(float)
        colour = self.colour_box.currentText()
        values = self.table[colour].to_numpy(float) if colour else None
        self.scatter.set_points(self.xy, values)
        self.mask = np.zeros(len(self.xy), bool)
        self.status.setText(f"{len(self.xy):,} cells")

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

    def _on_viewer_click(self, layer, event):
        if layer.mode != "pan_zoom" or self.table is None:
            return
        value = layer.get_value(
            event.position,
            view_direction=event.view_direction,
            dims_displayed=event.dims_displayed,
            world=True,
        )
        if value:
            self.pick([int(value)], add="Shift" in event.modifiers)

    def select(self, mask: np.ndarray, source: str) -> None:
        """Make ``mask`` the selection: plot, highlight layer, gallery and (maybe) the view."""
        self.mask = mask
        if self.layer is not None:
            self.layer.metadata["cellvae_selection"] = self.ids[mask][:1000].tolist()
        self.scatter.set_selected(mask)
        self.update_highlight()
        n = int(mask.sum())
        self.status.setText(f"{n:,} of {len(mask):,} cells selected")
        if source == "plot" and self.jump.isChecked():
            self.jump_to_selection()
        self.update_gallery()

    def update_highlight(self) -> None:
        """Paint the selected cells into the "selected cells" labels layer."""
        if self.layer is None:
            return
        from napari.utils.colormaps import Colormap

        data = self.layer.data[0] if self.layer.multiscale else self.layer.data
        painted = highlight(data, selection_lut(self.ids, self.mask, self._label_top + 1))
        if self.highlight_layer is None or self.highlight_layer not in self.viewer.layers:
            colours = Colormap([(0, 0, 0, 0), SELECTED_RGBA], name="cellvae selection")
            self.highlight_layer = self.viewer.add_image(
                painted,
                name="selected cells",
                scale=self.layer.scale,
                translate=self.layer.translate,
                colormap=colours,
                contrast_limits=(0, 1),
                opacity=0.9,
                blending="translucent",
                interpolation2d="nearest",
            )
            self.viewer.layers.selection.active = self.layer
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
        from napari.layers import Image

        images = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer is not self.highlight_layer
        ]
        original = next((i for i in images if i.name.startswith("original")), None)
        recon = next((i for i in images if i.name.startswith("reconstruction")), None)
        if original is None and images:
            original = images[0]
        return original, recon

    def update_gallery(self) -> None:
        """Thumbnails of the first selected cells: original crop above its reconstruction."""
        while self.gallery.count():
            self.gallery.takeAt(0).widget().deleteLater()
        rows = np.flatnonzero(self.mask)[:GALLERY_CELLS]
        axes = "zyx"[-self.layer.ndim :] if self.layer is not None else ""
        if not rows.size or any(f"centroid_{a}" not in self.table for a in axes):
            return
        sizes = [
            self.table[f"bbox_{a}_max"].to_numpy()[rows]
            - self.table[f"bbox_{a}_min"].to_numpy()[rows]
            for a in axes[-2:]
            if f"bbox_{a}_max" in self.table
        ]
        size = int(np.clip(1.5 * np.max(sizes) if sizes else 48, 16, 128))
        for column, row in enumerate(rows):
            centre = self.table.loc[row, [f"centroid_{a}" for a in axes]].to_numpy(float)
            world = self.layer.data_to_world(centre)
            for line, image in enumerate(self._image_layers()):
                if image is None:
                    continue
                data = image.data[0] if image.multiscale else image.data
                crop = crop_plane(data, image.world_to_data(world), size)
                self.gallery.addWidget(
                    _thumbnail(to_uint8(crop, image.contrast_limits)), line, column
                )
            label = QLabel(str(self.ids[row]))
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.gallery.addWidget(label, 2, column)


SELECTED_RGBA = (1.0, 0.65, 0.0, 1.0)


def _thumbnail(gray: np.ndarray) -> QLabel:
    gray = np.ascontiguousarray(gray)
    image = QImage(
        gray.data, gray.shape[1], gray.shape[0], gray.strides[0], QImage.Format.Format_Grayscale8
    )
    label = QLabel()
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setPixmap(QPixmap.fromImage(image.copy()).scaled(THUMB_PX, THUMB_PX))
    return label
