"""Latent explorer: what has the latent space learned?

Load a checkpoint (filled in from the provenance of any layer the results reader added) and
decode the z = 0 prototype, the interpolation between two cells of the table (the latent
browser's selection fills them in), or move one latent dimension with the slider; each
result is an image layer beside the image, on its grid (voxel size, z included), in its
intensity units and with its contrast limits, so it can be compared with the cells.
*Reconstruct what is in view* reconstructs the part of the image on screen
(:mod:`.view_reconstruction`).

Every model call (loading, decoding) runs in a worker (:class:`.workers.JobPanel`) with
progress and cancel; the slider decodes when it is released (or stepped with the keyboard),
and a value chosen while a decoding runs waits as the only next one. The decoding is in
:class:`.explore.Explorer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cellvae.errors import CellvaeError
from cellvae.napari.explore import Explorer, codes_of, placement_of
from cellvae.napari.layer_choice import LayerChoice, add_beside, is_cells_layer, is_source_image
from cellvae.napari.layer_data import montage
from cellvae.napari.messages import show_problem, user_errors
from cellvae.napari.workers import JobPanel

#: slider range in latent standard deviations (the prior is N(0, 1)).
SLIDER_SD = 3.0
PROTOTYPE, TRAVERSAL = "prototype (z = 0)", "latent traversal"


def is_original(layer) -> bool:
    """The image a decoding is compared with: named ``original ...`` by the results reader."""
    return str(layer.name).startswith("original")


class LatentExplorer(QWidget):
    """The dock widget: ``prototype()``, ``interpolate()``, ``set_traversal(dim, value)``.

    Each starts a background job and returns at once; ``jobs.busy`` says whether one runs.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.explorer: Explorer | None = None
        self._loaded: tuple | None = None
        self.ckpt = QLineEdit()
        self._filled = ""  # the checkpoint filled in from the layers (not typed)
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.cells = LayerChoice(napari_viewer, is_cells_layer, on_change=self._cells_changed)
        self.images = LayerChoice(napari_viewer, is_source_image, prefer=is_original)
        self.cell_a, self.cell_b, self.steps, self.dim = (QSpinBox() for _ in range(4))
        for box in (self.cell_a, self.cell_b):
            box.setRange(0, 2**31 - 1)
        self.steps.setRange(2, 32)
        self.steps.setValue(7)
        self.dim.setRange(0, 4095)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-100, 100)
        self.slider.setTracking(False)  # valueChanged on release (or a key), not while dragged
        self.slider_value = QLabel(self._value_text(0))
        self.slider.sliderMoved.connect(lambda v: self.slider_value.setText(self._value_text(v)))
        self.slider.valueChanged.connect(self._slider_changed)
        self.jobs = JobPanel("latent explorer")
        path_row = QHBoxLayout()
        path_row.addWidget(self.ckpt)
        path_row.addWidget(browse)
        slider_row = QHBoxLayout()
        slider_row.addWidget(self.slider, stretch=1)
        slider_row.addWidget(self.slider_value)
        form = QFormLayout()
        form.addRow("checkpoint", path_row)
        form.addRow("image", self.images.box)
        form.addRow("cells of", self.cells.box)
        form.addRow("cell A", self.cell_a)
        form.addRow("cell B", self.cell_b)
        form.addRow("steps", self.steps)
        form.addRow("latent dim", self.dim)
        form.addRow("value", slider_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for text, slot in (
            ("decode z = 0 (prototype)", self.prototype),
            ("use the browser's selection", self.use_selection),
            ("interpolate A -> B", self.interpolate),
            ("reconstruct what is in view", self.reconstruct_view),
        ):
            button = QPushButton(text)
            button.clicked.connect(slot)
            layout.addWidget(button)
        layout.addWidget(self.jobs)
        layout.addStretch()
        napari_viewer.layers.events.inserted.connect(self._find_checkpoint)
        self._find_checkpoint()

    @staticmethod
    def _value_text(v: int) -> str:
        return f"{v / 100 * SLIDER_SD:+.1f} sd"

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "checkpoint", "", "checkpoints (*.ckpt)")
        if path:
            self.ckpt.setText(path)

    def _find_checkpoint(self, event=None, cells=None) -> None:
        """Fill in the checkpoint that the results' provenance names: the cells layer's (the
        model whose codes its table holds, e.g. fine-tuned by ``embed --finetune``), else the
        first layer's that names one. A path the user typed stays.

        ``cells`` is the chosen cells layer when the choice reports it (default: the choice's).
        """
        shown = self.ckpt.text()
        if shown and shown != self._filled:
            return
        cells = cells if cells is not None else self.cells.layer
        layers = [*([cells] if cells is not None else []), *self.viewer.layers]
        ckpt = next((la.metadata.get("ckpt") for la in layers if la.metadata.get("ckpt")), None)
        if ckpt and ckpt != shown:
            self.ckpt.setText(ckpt)
            self._filled = ckpt

    def _cells_changed(self, layer) -> None:
        self._find_checkpoint(cells=layer)

    # -- the model, loaded in the worker ------------------------------------------------
    def _request(self) -> tuple[str, int, str | None]:
        """What the worker needs, read on the Qt thread: checkpoint, ndim, image path."""
        path = self.ckpt.text().strip()
        if not path:
            raise CellvaeError("choose a checkpoint (.ckpt written by cellvae fit)")
        anchor = self.cells.layer or self.images.layer
        image = self.images.layer
        source = (image.metadata or {}).get("path") if image is not None else None
        if source and Path(source).suffix.lower() in (".tif", ".tiff"):
            source = None  # no ingest statistics: the checkpoint's training image instead
        return path, _spatial_ndim(anchor), source

    def _model_in(self, request: tuple) -> Explorer:
        """The loaded model for ``request`` (worker thread): the cached one or a new one."""
        if self.explorer is not None and self._loaded == request:
            return self.explorer
        path, ndim, source = request
        return Explorer.load(path, ndim, source)

    def _keep(self, request: tuple, explorer: Explorer) -> None:
        self.explorer, self._loaded = explorer, request
        self.dim.setMaximum(explorer.latent_dim - 1)

    def _start(self, label: str, work, show) -> None:
        """Run ``work(job, explorer)`` in the worker, then ``show(result)`` on the Qt thread."""
        with user_errors():
            request = self._request()

            def run(job, request):
                job.progress(0.0)
                explorer = self._model_in(request)
                job.progress(0.2)
                return request, explorer, work(job, explorer)

            def done(result):
                request, explorer, value = result
                self._keep(request, explorer)
                show(explorer, value)

            self.jobs.run(run, request, on_done=done, label=label)

    # -- actions ------------------------------------------------------------------------
    def prototype(self) -> None:
        """Decode z = 0 into the layer "prototype (z = 0)"."""
        self._start(
            "decoding z = 0",
            lambda job, model: model.prototype(),
            lambda model, image: self._show(model, image, PROTOTYPE, row=0),
        )

    def reconstruct_view(self) -> None:
        """Reconstruct the part of the chosen image on screen (:mod:`.view_reconstruction`):
        the layer "reconstruction (in view)" over it."""
        from cellvae.napari import view_reconstruction

        image = self.images.layer
        with user_errors():
            if image is None:
                raise CellvaeError("choose the image layer to reconstruct")
            view_reconstruction.start(
                self.viewer,
                image,
                self.ckpt.text().strip(),
                self.jobs,
                lambda result: view_reconstruction.show(self.viewer, image, result),
            )

    def use_selection(self) -> None:
        """Fill cells A and B with the first two cells selected in the latent browser."""
        layer = self.cells.layer
        chosen = list((layer.metadata or {}).get("cellvae_selection", [])) if layer else []
        if len(chosen) < 2:
            show_problem("select at least two cells in the latent browser first")
            return
        self.cell_a.setValue(int(chosen[0]))
        self.cell_b.setValue(int(chosen[1]))

    def interpolate(self) -> None:
        """Decode the interpolation from cell A to cell B into "interpolation A -> B"."""
        with user_errors():
            layer = self.cells.layer
            if layer is None:
                raise CellvaeError("no labels layer with a cells table: open a results folder")
            a_id, b_id, steps = self.cell_a.value(), self.cell_b.value(), self.steps.value()
            a, b = codes_of(layer.features, [a_id, b_id])
            name = f"interpolation {a_id} -> {b_id}"
            self._start(
                f"interpolating {a_id} -> {b_id}",
                lambda job, model: model.interpolate(a, b, steps, job),
                lambda model, stack: self._show(model, montage(stack, cols=len(stack)), name, 2),
            )

    def _slider_changed(self, v: int) -> None:
        self.slider_value.setText(self._value_text(v))
        self.set_traversal(self.dim.value(), v / 100)

    def set_traversal(self, dim: int, value: float) -> None:
        """Decode z = 0 with latent ``dim`` at ``value`` x 3 sd into "latent traversal"."""

        def work(job, model):
            return model.traverse(np.zeros(model.latent_dim), dim, [value * SLIDER_SD])[0]

        def show(model, image):
            layer = self._show(model, image, TRAVERSAL, row=1)
            layer.metadata["traversal"] = (dim, value * SLIDER_SD)

        self._start(f"decoding dimension {dim} at {value * SLIDER_SD:+.1f} sd", work, show)

    def _show(self, model: Explorer, data: np.ndarray, name: str, row: int):
        """Show ``data`` as layer ``name`` in ``row`` of a column right of the image."""
        anchor = self.cells.layer or self.images.layer
        kwargs = placement_of(anchor, self.images.layer, model.vae.ndim).kwargs(model.patch, row)
        metadata = {"cellvae_kind": "decoding", "units": model.units.record()}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            if "contrast_limits" in kwargs:
                layer.contrast_limits = kwargs["contrast_limits"]
            layer.metadata.update(metadata)
            return layer
        layer = add_beside(
            self.viewer, data, name=name, colormap="gray", metadata=metadata, **kwargs
        )
        # the new layer sits right of the image: bring it in view, in the next event-loop
        # turn (the insert above already takes most of a turn's budget)
        QTimer.singleShot(0, self.viewer.reset_view)
        return layer


def _spatial_ndim(layer) -> int:
    axes = (getattr(layer, "metadata", None) or {}).get("axes")
    if axes:
        return sum(a in "zyx" for a in axes)
    return 3 if layer is not None and layer.ndim >= 3 else 2
