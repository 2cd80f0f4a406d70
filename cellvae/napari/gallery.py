"""The latent browser's gallery: crops of the selected cells, image above reconstruction.

Crops are read around each cell's centroid in world coordinates, so the original and the
reconstruction (on their own grids) show the same cell; at the image's edges they are
mirrored (:func:`.selection.crop_plane`).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QGridLayout, QLabel, QWidget

from cellvae.napari.selection import crop_plane, to_uint8

#: cells shown in the gallery (the first selected ones, in table order).
GALLERY_CELLS = 6
THUMB_PX = 72


def crop_size(table, rows: np.ndarray, axes: str) -> int:
    """The crop side (px): 1.5 times the largest selected cell, clipped to 16..128."""
    sizes = [
        table[f"bbox_{a}_max"].to_numpy()[rows] - table[f"bbox_{a}_min"].to_numpy()[rows]
        for a in axes[-2:]
        if f"bbox_{a}_max" in table and f"bbox_{a}_min" in table
    ]
    return int(np.clip(1.5 * np.max(sizes) if sizes else 48, 16, 128))


def thumbnail(gray: np.ndarray) -> QLabel:
    """A uint8 image ``(H, W)`` as a ``THUMB_PX`` square label."""
    gray = np.ascontiguousarray(gray)
    image = QImage(
        gray.data, gray.shape[1], gray.shape[0], gray.strides[0], QImage.Format.Format_Grayscale8
    )
    label = QLabel()
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setPixmap(QPixmap.fromImage(image.copy()).scaled(THUMB_PX, THUMB_PX))
    return label


class Gallery(QWidget):
    """A grid of thumbnails: one column per selected cell, rows original / reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)

    def count(self) -> int:
        """Widgets shown (thumbnails and their label ids)."""
        return self.grid.count()

    def clear(self) -> None:
        """Remove every thumbnail."""
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()

    def show_cells(self, layer, table, ids: np.ndarray, rows: np.ndarray, images) -> None:
        """Thumbnails of ``rows`` of ``table`` (cells of labels ``layer``) from ``images``.

        ``images`` are the image layers to crop (original, reconstruction; None skipped).
        """
        self.clear()
        rows = rows[:GALLERY_CELLS]
        axes = "zyx"[-layer.ndim :] if layer is not None else ""
        if not rows.size or any(f"centroid_{a}" not in table for a in axes):
            return
        size = crop_size(table, rows, axes)
        for column, row in enumerate(rows):
            centre = table.loc[row, [f"centroid_{a}" for a in axes]].to_numpy(float)
            world = layer.data_to_world(centre)
            for line, image in enumerate(images):
                if image is None:
                    continue
                data = image.data[0] if image.multiscale else image.data
                crop = crop_plane(data, image.world_to_data(world), size)
                self.grid.addWidget(thumbnail(to_uint8(crop, image.contrast_limits)), line, column)
            label = QLabel(str(ids[row]))
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(label, 2, column)
