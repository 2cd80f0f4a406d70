"""Blur inspector: how much of the original's fine structure did the reconstruction keep?

On open it shows the ``blur.json`` stored with the results (its figures and worst regions).
Choose the original and the reconstruction layers and press *compute*: the noise-aware blur
map (share of the original's resolvable structure kept per window, :mod:`.blur`) is computed
in a napari ``thread_worker`` with a progress bar, then shown in the one "blur map" layer
(reused, with a colourbar; windows without signal are transparent), with the figures, the
worst regions ranked by that share (click one to go there) and the curves behind
"original resolves X, reconstruction keeps Y".
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cellvae.errors import CellvaeError
from cellvae.napari.blur import (
    MAP_MEANING,
    RANKING,
    BlurReport,
    inspect,
    overlay_geometry,
    reconstruct_crop,
    region_centre,
    region_label,
    stored_summary,
    summary_lines,
    view_region,
)
from cellvae.napari.messages import show_problem
from cellvae.napari.navigate import go_to, outline
from cellvae.napari.viewport import visible_box


class _Progress(QObject):
    """Carries progress from the worker thread to the Qt thread (a queued signal)."""

    changed = Signal(float)


def _level0(layer):
    return layer.data[0] if layer.multiscale else layer.data


def _is_blur_map(layer) -> bool:
    return layer.name == "blur map" or layer.name.startswith("blur map [")


def _camera_of(layer) -> dict | None:
    """The camera recorded with the file a layer was read from, if any."""
    path = (layer.metadata or {}).get("path")
    if not path:
        return None
    from cellvae.io.camera import read_camera

    return read_camera(path)


def _stats_of(layer) -> dict | None:
    """Stored intensity statistics of the OME-Zarr a layer was read from, if any."""
    path = (layer.metadata or {}).get("path")
    if not path or str(path).lower().endswith((".tif", ".tiff")):
        return None
    try:
        from cellvae.io.omezarr import open_image

        return open_image(path).stats
    except CellvaeError:
        return None


class BlurInspector(QWidget):
    """The dock widget; ``compute()`` starts the worker, ``report`` holds the last result."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.viewer = napari_viewer
        self.report: BlurReport | None = None
        self.worker = None
        self.original_box, self.recon_box = QComboBox(), QComboBox()
        self.window = QSpinBox()
        self.window.setRange(4, 512)
        self.window.setValue(32)
        self.button = QPushButton("compute blur map")
        self.button.clicked.connect(self.compute)
        self.ckpt = QLineEdit()
        self.ckpt.setPlaceholderText("checkpoint (.ckpt), to reconstruct the view")
        self.recon_button = QPushButton("reconstruct what is in view, then compute")
        self.recon_button.clicked.connect(self.reconstruct_view)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self._progress = _Progress()
        self._progress.changed.connect(self._on_progress)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.legend = QLabel(
            f"map colour: {MAP_MEANING}, 0 (dark: all lost) to 1 (bright: all kept); "
            "transparent: no signal above the original's noise"
        )
        self.legend.setWordWrap(True)
        self.ranking = QLabel(RANKING)
        self.ranking.setWordWrap(True)
        self.regions = QListWidget()
        self.regions.currentRowChanged.connect(self.jump_to_region)
        self.worst: list[dict] = []
        self._centres: list[np.ndarray] = []
        self._original = None
        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.plot = FigureCanvasQTAgg(self.figure)
        form = QFormLayout()
        form.addRow("original", self.original_box)
        form.addRow("reconstruction", self.recon_box)
        form.addRow("window (px)", self.window)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.ckpt)
        layout.addWidget(self.recon_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.legend)
        layout.addWidget(self.ranking)
        layout.addWidget(self.regions)
        layout.addWidget(self.plot)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self.show_stored()

    def _refresh_layers(self, event=None) -> None:
        from napari.layers import Image

        names = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and not _is_blur_map(layer)
            and layer.name != "selected cells"
        ]
        for box, prefix, fallback in (
            (self.original_box, "original", 0),
            (self.recon_box, "reconstruction", 1),
        ):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            pick = (
                current
                if current in names
                else next(
                    (n for n in names if n.startswith(prefix)),
                    names[min(fallback, len(names) - 1)] if names else "",
                )
            )
            box.setCurrentText(pick)
            box.blockSignals(False)
        ckpt = next(
            (la.metadata.get("ckpt") for la in self.viewer.layers if la.metadata.get("ckpt")), None
        )
        if ckpt and not self.ckpt.text():
            self.ckpt.setText(ckpt)

    def compute(self) -> None:
        """Start the blur map worker on the chosen layers (progress bar, no freezing)."""
        from napari.qt.threading import create_worker

        names = self.original_box.currentText(), self.recon_box.currentText()
        if not all(n in self.viewer.layers for n in names):
            show_problem("choose an original and a reconstruction image layer")
            return
        original, recon = (self.viewer.layers[n] for n in names)
        self.worker = create_worker(
            inspect,
            _level0(original),
            _level0(recon),
            window=self.window.value(),
            on_progress=self._progress.changed.emit,
            camera=_camera_of(original),
        )
        self.worker.returned.connect(lambda report: self._show(report, original))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(lambda: self.button.setEnabled(True))
        self.button.setEnabled(False)
        self.progress.setValue(0)
        self.summary.setText("computing ...")
        self.worker.start()

    def reconstruct_view(self) -> None:
        """Reconstruct the visible region of the original with the checkpoint, in a worker.

        The region and its reconstruction become the layers "original (in view)" and
        "reconstruction (in view)"; the blur map is then computed on them.
        """
        from napari.qt.threading import create_worker

        name = self.original_box.currentText()
        if name not in self.viewer.layers or not self.ckpt.text().strip():
            show_problem("choose the original layer and a checkpoint")
            return
        original = self.viewer.layers[name]
        data = _level0(original)
        axes = (original.metadata or {}).get("axes") or "zyx"[-data.ndim :]
        point = np.asarray(original.world_to_data(self.viewer.dims.point[-data.ndim :]))
        ckpt, stats = self.ckpt.text().strip(), _stats_of(original)
        # what the camera shows, in level-0 voxels (napari's corner_pixels is widened to
        # whole chunks, and to the whole image when it is not chunked)
        lo, hi = visible_box(self.viewer, original)
        # at least 4 windows a side around the view's centre, so the map has windows to
        # rank and the image enough pixels for its noise fit
        side = 4 * self.window.value()
        for axis in range(max(0, data.ndim - 2), data.ndim):
            if hi[axis] - lo[axis] < side:
                mid = (lo[axis] + hi[axis]) // 2
                lo[axis] = max(0, min(mid - side // 2, data.shape[axis] - side))
                hi[axis] = min(data.shape[axis], lo[axis] + side)
        corners = np.stack([lo, hi - 1]).astype(float)

        def work():
            from cellvae.inference.model import load_model

            ndim = min(load_model(ckpt)[0].ndim, sum(a in "zyx" for a in axes))
            region = view_region(data.shape, corners, point, ndim)
            crop = np.asarray(data[region], np.float32)
            return region, crop, reconstruct_crop(ckpt, crop, stats)

        self.worker = create_worker(work)
        self.worker.returned.connect(lambda result: self._show_view(original, *result))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(lambda: self.recon_button.setEnabled(True))
        self.recon_button.setEnabled(False)
        self.summary.setText("reconstructing the view ...")
        self.worker.start()

    def _show_view(self, original, region, crop: np.ndarray, recon: np.ndarray) -> None:
        kept = [i for i, r in enumerate(region) if isinstance(r, slice)]
        scale = [original.scale[i] for i in kept]
        translate = [original.translate[i] + region[i].start * original.scale[i] for i in kept]
        names = ("original (in view)", "reconstruction (in view)")
        for name, data, colour in zip(names, (crop, recon), ("magenta", "green")):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_image(
                data,
                name=name,
                scale=scale,
                translate=translate,
                colormap=colour,
                blending="additive",
            )
        self.original_box.setCurrentText(names[0])
        self.recon_box.setCurrentText(names[1])
        self.compute()

    def _on_progress(self, fraction: float) -> None:
        self.progress.setValue(round(100 * fraction))

    def _on_error(self, err: Exception) -> None:
        message = str(err) if isinstance(err, CellvaeError) else f"{type(err).__name__}: {err}"
        self.summary.setText("")
        show_problem(f"blur inspector: {message}", error=True)

    def _blur_layer(self):
        return next((layer for layer in self.viewer.layers if _is_blur_map(layer)), None)

    def show_stored(self) -> None:
        """Show the ``blur.json`` stored with the loaded results, if there is one."""
        folder = next(
            (
                la.metadata.get("cellvae_results")
                for la in self.viewer.layers
                if (la.metadata or {}).get("cellvae_results")
            ),
            None,
        )
        summary = stored_summary(folder)
        if summary is None:
            return
        self._original = next(
            (la for la in self.viewer.layers if la.name == self.original_box.currentText()), None
        )
        self.summary.setText("stored blur.json: " + "\n".join(summary_lines(summary)))
        regions = summary.get("worst_regions") or []
        self._list_regions(regions, [np.asarray(r["centre"], float) for r in regions])
        layer = self._blur_layer()
        if layer is not None:
            layer.colorbar.visible = True
        if summary.get("resolution"):
            self._plot_resolution(summary["resolution"], summary.get("resolution_sentence", ""))

    def _list_regions(self, regions: list[dict], centres: list[np.ndarray]) -> None:
        self.worst, self._centres = regions, centres
        self.regions.blockSignals(True)
        self.regions.clear()
        for region, centre in zip(regions, centres):
            self.regions.addItem(region_label(region, centre))
        self.regions.blockSignals(False)

    def _show(self, report: BlurReport, original) -> None:
        self.report, self._original = report, original
        bmap = report.map
        scale, translate = overlay_geometry(bmap, list(original.scale), list(original.translate))
        values = bmap.share.astype(np.float32)
        layer = self._blur_layer()
        if layer is not None and not layer.multiscale and layer.ndim == values.ndim:
            layer.data = values
            layer.scale, layer.translate = scale, translate
            layer.contrast_limits = (0.0, 1.0)
            layer.visible = True
        else:
            index = None
            if layer is not None:  # a pyramid or another dimensionality: replaced in place
                index = self.viewer.layers.index(layer)
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_image(
                values,
                name=layer.name if layer is not None else "blur map",
                scale=scale,
                translate=translate,
                colormap="inferno",
                contrast_limits=(0.0, 1.0),
                opacity=0.5,
                blending="translucent",
            )
            if index is not None:
                self.viewer.layers.move(len(self.viewer.layers) - 1, index)
        layer.metadata["meaning"] = MAP_MEANING
        layer.colorbar.visible = True
        self.summary.setText("\n".join(summary_lines(report.figures)))
        self._list_regions(report.worst, [region_centre(r, bmap) for r in report.worst])
        self._plot_resolution(report.figures["resolution"], report.figures["resolution_sentence"])

    def _plot_resolution(self, resolution: dict, sentence: str) -> None:
        """The original's expected FRC and the reconstruction's kept power per ring."""
        self.figure.clear()
        ax = self.figure.add_subplot()
        freqs = np.asarray(resolution["frequencies_cycles_per_px"], float)
        for key, label in (
            ("original_expected_frc", "original: expected FRC"),
            ("reconstruction_power_over_original_signal", "recon / original signal power"),
        ):
            values = resolution.get(key)
            if values is not None:
                ax.plot(freqs, [np.nan if v is None else v for v in values], label=label)
        ax.axhline(1 / 7, ls=":", color="0.5", lw=0.8)
        ax.axhline(0.5, ls="-.", color="0.5", lw=0.8)
        ax.set_xlabel("cycles/px")
        ax.set_ylim(-0.1, 1.3)
        ax.set_title(sentence, fontsize=7)
        ax.legend(fontsize=6)
        self.plot.draw_idle()

    def jump_to_region(self, row: int) -> None:
        """Centre the view on worst region ``row`` and zoom so its window fills the view."""
        if self._original is None or not 0 <= row < len(self._centres):
            return
        centre = np.asarray(self._centres[row], float)
        side = float(self.report.map.window) if self.report is not None else 32.0
        go_to(self.viewer, self._original, centre, extent=(side, side))
        half = np.full(2, side / 2)
        outline(self.viewer, self._original, centre[-2:] - half, centre[-2:] + half)
