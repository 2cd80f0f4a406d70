"""Latent explorer: what has the latent space learned?

Load a checkpoint (the results reader fills it in from the provenance) and decode the z = 0
prototype, the interpolation between two cells of the table (the latent browser's selection
fills them in), or move one latent dimension with the slider; each result is an image layer.
The decoding is in :class:`.explore.Explorer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cellvae.errors import CellvaeError
from cellvae.napari.explore import Explorer, codes_of
from cellvae.napari.layer_data import montage
from cellvae.napari.messages import show_problem, user_errors

#: slider range in latent standard deviations (the prior is N(0, 1)).
SLIDER_SD = 3.0


class LatentExplorer(QWidget):
    """The dock widget: ``prototype()``, ``interpolate()``, ``set_traversal(dim, value)``."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.explorer: Explorer | None = None
        self._loaded: str | None = None
        self.ckpt = QLineEdit()
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.layer_box = QComboBox()
        self.cell_a, self.cell_b, self.steps, self.dim = (QSpinBox() for _ in range(4))
        for box in (self.cell_a, self.cell_b):
            box.setRange(0, 2**31 - 1)
        self.steps.setRange(2, 32)
        self.steps.setValue(7)
        self.dim.setRange(0, 4095)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-100, 100)
        self.slider.valueChanged.connect(lambda v: self.set_traversal(self.dim.value(), v / 100))
        buttons = {
            "decode z = 0 (prototype)": self.prototype,
            "use the browser's selection": self.use_selection,
            "interpolate A -> B": self.interpolate,
        }
        path_row = QHBoxLayout()
        path_row.addWidget(self.ckpt)
        path_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("checkpoint", path_row)
        form.addRow("cells of", self.layer_box)
        form.addRow("cell A", self.cell_a)
        form.addRow("cell B", self.cell_b)
        form.addRow("steps", self.steps)
        form.addRow("latent dim", self.dim)
        form.addRow(f"value (±{SLIDER_SD:g} sd)", self.slider)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for text, slot in buttons.items():
            button = QPushButton(text)
            button.clicked.connect(slot)
            layout.addWidget(button)
        layout.addStretch()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "checkpoint", "", "checkpoints (*.ckpt)")
        if path:
            self.ckpt.setText(path)

    def _refresh_layers(self, event=None) -> None:
        from napari.layers import Labels

        names = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and "index" in layer.features
        ]
        current = self.layer_box.currentText()
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        if names and not self.ckpt.text():
            ckpt = (self.viewer.layers[names[0]].metadata or {}).get("ckpt")
            if ckpt:
                self.ckpt.setText(ckpt)

    def _cells_layer(self):
        name = self.layer_box.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _model(self) -> Explorer:
        path = self.ckpt.text().strip()
        if not path:
            raise CellvaeError("choose a checkpoint (.ckpt written by cellvae fit)")
        if self.explorer is None or self._loaded != path:
            layer = self._cells_layer()
            ndim = _spatial_ndim(layer) if layer is not None else _spatial_ndim(self._any_image())
            self.explorer = Explorer.load(path, ndim, _stats(self.viewer))
            self._loaded = path
            self.dim.setMaximum(self.explorer.latent_dim - 1)
        return self.explorer

    def _any_image(self):
        from napari.layers import Image

        return next((la for la in self.viewer.layers if isinstance(la, Image)), None)

    def _show(self, data: np.ndarray, name: str, row: int) -> None:
        """Show ``data`` as layer ``name`` in ``row`` of a column right of the image."""
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
            return
        anchor = self._cells_layer() or self._any_image()
        scale = list(anchor.scale[-2:]) if anchor is not None else [1.0, 1.0]
        right = anchor.extent.world[1][-1] if anchor is not None else 0.0
        top = anchor.extent.world[0][-2] if anchor is not None else 0.0
        patch = np.asarray(self._model().patch[-2:], float) * scale
        translate = [top + row * 1.25 * patch[0], right + 0.25 * patch[1]]
        lead = data.ndim - 2
        self.viewer.add_image(
            data,
            name=name,
            colormap="gray",
            scale=[1.0] * lead + scale,
            translate=[0.0] * lead + translate,
        )
        self.viewer.reset_view()  # the new layer sits right of the image: bring it in view

    def prototype(self) -> None:
        """Decode z = 0 into the layer "prototype (z = 0)"."""
        with user_errors():
            self._show(self._model().prototype(), "prototype (z = 0)", row=0)

    def use_selection(self) -> None:
        """Fill cells A and B with the first two cells selected in the latent browser."""
        layer = self._cells_layer()
        chosen = list((layer.metadata or {}).get("cellvae_selection", [])) if layer else []
        if len(chosen) < 2:
            show_problem("select at least two cells in the latent browser first")
            return
        self.cell_a.setValue(int(chosen[0]))
        self.cell_b.setValue(int(chosen[1]))

    def interpolate(self) -> None:
        """Decode the interpolation from cell A to cell B into "interpolation A -> B"."""
        with user_errors():
            layer = self._cells_layer()
            if layer is None:
                raise CellvaeError("no labels layer with a cells table: open a results folder")
            a, b = codes_of(layer.features, [self.cell_a.value(), self.cell_b.value()])
            stack = self._model().interpolate(a, b, self.steps.value())
            name = f"interpolation {self.cell_a.value()} -> {self.cell_b.value()}"
            self._show(montage(stack, cols=len(stack)), name, row=2)

    def set_traversal(self, dim: int, value: float) -> None:
        """Decode z = 0 with latent ``dim`` at ``value`` x 3 sd into "latent traversal"."""
        with user_errors():
            model = self._model()
            image = model.traverse(np.zeros(model.latent_dim), dim, [value * SLIDER_SD])[0]
            self._show(image, "latent traversal", row=1)
            self.viewer.layers["latent traversal"].metadata["traversal"] = (dim, value * SLIDER_SD)


def _spatial_ndim(layer) -> int:
    axes = (getattr(layer, "metadata", None) or {}).get("axes")
    if axes:
        return sum(a in "zyx" for a in axes)
    return 3 if layer is not None and layer.ndim >= 3 else 2


def _stats(viewer) -> dict | None:
    """Intensity statistics of the original image layer's OME-Zarr, if it has them."""
    for layer in viewer.layers:
        path = (layer.metadata or {}).get("path")
        if layer.name.startswith("original") and path and not Path(path).suffix.lower() == ".tif":
            try:
                from cellvae.io.omezarr import open_image

                return open_image(path).stats
            except CellvaeError:
                return None
    return None
