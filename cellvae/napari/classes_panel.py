"""Named classes of cells in the latent browser: kept in the labels layer, saved and loaded.

*Add selection to class* writes the class name into the ``class`` column of the labels
layer's ``features`` for the selected cells, so the classes survive re-plots, axis changes
and new selections, and travel with the layer. *Save* writes the cells that have a class as
CSV or Parquet (``label``, ``class``; by default ``classes.csv`` beside the cells table),
which *load* (or ``cellvae embed --classes FILE``) reads back with the same cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from cellvae.inference.classes import CLASS_COLUMN, merge_classes, read_classes, write_classes
from cellvae.napari.messages import user_errors


def class_counts(features: pd.DataFrame) -> dict[str, int]:
    """Cells per class name (cells without a class are not counted)."""
    if CLASS_COLUMN not in features:
        return {}
    named = features[CLASS_COLUMN].astype(str)
    return {str(k): int(v) for k, v in named[named != ""].value_counts(sort=False).items()}


class ClassPanel(QWidget):
    """Buttons of the latent browser for classes; ``browser`` is the :class:`LatentBrowser`."""

    def __init__(self, browser) -> None:
        super().__init__()
        self.browser = browser
        self.name = QLineEdit("class 1")
        self.classes = QComboBox()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        buttons = (
            ("add selection to class", lambda: self.assign(self.name.text()), 0, 1),
            ("select class", lambda: self.select_class(self.classes.currentText()), 1, 1),
            ("save classes ...", self._save_dialog, 2, 0),
            ("load classes ...", self._load_dialog, 2, 1),
        )
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.name, 0, 0)
        layout.addWidget(self.classes, 1, 0)
        for text, slot, row, column in buttons:
            button = QPushButton(text)
            button.clicked.connect(slot)
            layout.addWidget(button, row, column)
        layout.addWidget(self.summary, 3, 0, 1, 2)

    # -- the features column -----------------------------------------------------------
    def _features(self) -> pd.DataFrame | None:
        layer = self.browser.layer
        return None if layer is None else layer.features

    def _write(self, column: np.ndarray) -> None:
        """Store the class column in the layer's features and the browser's table."""
        layer = self.browser.layer
        features = layer.features.copy()
        features[CLASS_COLUMN] = column
        layer.features = features
        self.browser.table[CLASS_COLUMN] = column
        self.refresh()

    def refresh(self) -> None:
        """Show the classes present and their sizes."""
        counts = class_counts(self._features()) if self._features() is not None else {}
        current = self.classes.currentText()
        self.classes.clear()
        self.classes.addItems(list(counts))
        if current in counts:
            self.classes.setCurrentText(current)
        self.summary.setText(
            ", ".join(f"{name}: {n:,} cells" for name, n in counts.items()) or "no classes yet"
        )

    def assign(self, name: str) -> None:
        """Give the selected cells the class ``name`` (other cells keep theirs)."""
        with user_errors():
            features = self._features()
            name = name.strip()
            if features is None or not name:
                return
            column = (
                features[CLASS_COLUMN].astype(str).to_numpy(object)
                if CLASS_COLUMN in features
                else np.full(len(features), "", object)
            )
            column[self.browser.mask] = name
            self._write(column.astype(str))
            self.classes.setCurrentText(name)

    def select_class(self, name: str) -> None:
        """Select the cells of class ``name``."""
        features = self._features()
        if features is None or CLASS_COLUMN not in features or not name:
            return
        self.browser.select(features[CLASS_COLUMN].astype(str).to_numpy() == name, "classes")

    # -- files ---------------------------------------------------------------------------
    def default_path(self) -> Path:
        """``classes.csv`` beside the cells table (the results folder), else here."""
        table = (
            (self.browser.layer.metadata or {}).get("cells_table") if self.browser.layer else None
        )
        return Path(table).with_name("classes.csv") if table else Path("classes.csv")

    def save(self, path: str | Path) -> Path | None:
        """Write the cells that have a class to ``path`` (CSV or Parquet)."""
        with user_errors():
            features = self._features()
            if features is None:
                return None
            written = write_classes(features, path, [CLASS_COLUMN], id_column="index")
            self.summary.setText(f"saved {written}")
            return written
        return None

    def load(self, path: str | Path) -> None:
        """Read classes from ``path`` into the features and select the cells that have one."""
        with user_errors():
            features = self._features()
            if features is None:
                return
            classes = read_classes(path)
            if CLASS_COLUMN not in classes:  # a file of one other column: take it as the class
                other = [c for c in classes.columns if c != "label"]
                classes = classes.rename(columns={other[0]: CLASS_COLUMN})
            merged = merge_classes(features, classes[["label", CLASS_COLUMN]], str(path), "index")
            self._write(merged[CLASS_COLUMN].to_numpy())
            self.browser.select(merged[CLASS_COLUMN].to_numpy() != "", "classes")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "save classes", str(self.default_path()), "CSV (*.csv);;Parquet (*.parquet)"
        )
        if path:
            self.save(path)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "load classes", str(self.default_path().parent), "classes (*.csv *.parquet)"
        )
        if path:
            self.load(path)
