"""Layer drop-downs shared by the widgets: filtered, and following renames and removals.

A :class:`LayerChoice` keeps a ``QComboBox`` in step with the viewer's layers that pass a
test (an image that can be an original, a labels layer with a cells table). It tracks the
chosen *layer*, not its name: renaming it renames the entry and keeps it chosen. Layers the
plugin itself adds (blur maps, the selection highlight, decodings) carry
``metadata["cellvae_kind"]`` and are never offered as originals.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox

#: ``metadata["cellvae_kind"]`` of layers that are derived views, not source images.
DERIVED_KINDS = ("blur map", "selection", "decoding", "outline")


def kind_of(layer) -> str | None:
    """``metadata["cellvae_kind"]`` of a layer, or "blur map" for a layer named so."""
    kind = (getattr(layer, "metadata", None) or {}).get("cellvae_kind")
    if kind is None and str(getattr(layer, "name", "")).startswith("blur map"):
        return "blur map"
    return kind


def is_source_image(layer) -> bool:
    """An image layer that can be an original or a reconstruction (not a derived view)."""
    from napari.layers import Image

    return isinstance(layer, Image) and kind_of(layer) not in DERIVED_KINDS


def is_cells_layer(layer) -> bool:
    """A labels layer whose ``features`` hold a cells table (an ``index`` column)."""
    from napari.layers import Labels

    return isinstance(layer, Labels) and "index" in layer.features and kind_of(layer) is None


def add_beside(viewer, data, kind: str = "image", **kwargs):
    """Add a layer (``kind``: image, shapes, ...) without making it the active layer.

    The active layer stays what the user chose (the cells, so that a click still selects a
    cell), and napari skips switching its layer controls: a fifth less work on the Qt thread
    for an insert that already takes most of the event loop's 100 ms budget. napari has no
    public switch for this (``LayerList._activate_on_insert``); without it, the layer is
    added as usual.
    """
    layers = getattr(viewer, "__wrapped__", viewer).layers
    activate = getattr(layers, "_activate_on_insert", None)
    if activate is not None:
        layers._activate_on_insert = False
    try:
        return getattr(viewer, f"add_{kind}")(data, **kwargs)
    finally:
        if activate is not None:
            layers._activate_on_insert = activate


def same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are one layer (napari may hand widgets proxies of layers)."""
    return a is b or (a is not None and b is not None and a == b)


class LayerChoice:
    """A drop-down of the viewer's layers that pass ``accept``, following renames.

    ``prefer(layer)`` picks the default when nothing is chosen yet; ``on_change(layer)`` is
    called (Qt thread) when the chosen layer changes, with None when none is left.
    """

    def __init__(
        self,
        viewer,
        accept: Callable[[object], bool],
        prefer: Callable[[object], bool] | None = None,
        on_change: Callable[[object], None] | None = None,
    ) -> None:
        self.viewer = viewer
        self.accept, self.prefer, self.on_change = accept, prefer, on_change
        self.box = QComboBox()
        self._layers: list = []
        self._chosen = None
        self.box.currentIndexChanged.connect(self._picked)
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    @property
    def layer(self):
        """The chosen layer, or None."""
        return self._chosen

    def choose(self, layer) -> None:
        """Make ``layer`` the chosen one (if it is offered)."""
        for i, offered in enumerate(self._layers):
            if same_layer(offered, layer):
                self.box.setCurrentIndex(i)

    def _inserted(self, event) -> None:
        event.value.events.name.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """Rebuild the entries from the viewer's layers; keep the chosen layer if it is left."""
        layers = [layer for layer in self.viewer.layers if self.accept(layer)]
        chosen = next((la for la in layers if same_layer(la, self._chosen)), None)
        if chosen is None and layers:
            chosen = next((la for la in layers if self.prefer and self.prefer(la)), layers[0])
        names = [layer.name for layer in layers]
        if (
            names == [self.box.itemText(i) for i in range(self.box.count())]
            and len(layers) == len(self._layers)
            and all(same_layer(a, b) for a, b in zip(layers, self._layers))
            and same_layer(chosen, self._chosen)
        ):
            return  # nothing offered changed (e.g. a derived layer was added)
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItems(names)
        self._layers = layers
        if chosen is not None:
            self.box.setCurrentIndex(next(i for i, la in enumerate(layers) if la is chosen))
        self.box.blockSignals(False)
        if not same_layer(chosen, self._chosen):
            self._chosen = chosen
            if self.on_change is not None:
                self.on_change(chosen)

    def _picked(self, index: int) -> None:
        layer = self._layers[index] if 0 <= index < len(self._layers) else None
        if not same_layer(layer, self._chosen):
            self._chosen = layer
            if self.on_change is not None:
                self.on_change(layer)
