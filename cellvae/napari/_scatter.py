"""A vispy scatter canvas for the latent browser: markers, or a density image when crowded.

napari already ships vispy, and its GPU markers and a binned density image keep a million
points interactive. The canvas reports selections (click, box, lasso) in data units through
``on_select(kind, geometry)``; it knows nothing about cells or layers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from vispy import scene
from vispy.color import get_colormap

from cellvae.napari.selection import DensityGrid, log_density

#: above this many points the plot is a density image instead of markers.
DENSITY_ABOVE = 50_000
#: at most this many selected points are drawn as markers (evenly thinned beyond).
MAX_SELECTED_MARKERS = 50_000
BACKGROUND = "#262930"
SELECTED = (1.0, 0.65, 0.0, 1.0)


class ScatterCanvas:
    """The plot: ``set_points``, ``set_selected``; ``mode`` is pan, click, box or lasso."""

    def __init__(self, on_select: Callable[[str, np.ndarray], None]) -> None:
        self.on_select = on_select
        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=BACKGROUND, size=(360, 320))
        grid = self.canvas.central_widget.add_grid(margin=4)
        self.view = grid.add_view(row=0, col=1)
        self.view.camera = scene.PanZoomCamera(aspect=None)
        for orientation, row, col in (("left", 0, 0), ("bottom", 1, 1)):
            axis = scene.AxisWidget(
                orientation=orientation, text_color="w", axis_color="w", tick_color="w"
            )
            axis.stretch = (0.12, 1) if orientation == "left" else (1, 0.1)
            grid.add_widget(axis, row=row, col=col)
            axis.link_view(self.view)
        self.markers = scene.Markers(parent=self.view.scene)
        self.density = scene.Image(np.zeros((2, 2), np.float32), parent=self.view.scene)
        self.density.cmap, self.density.clim = "viridis", (0.0, 1.0)
        self.chosen = scene.Markers(parent=self.view.scene)
        self.outline = scene.Line(color="white", width=1.5, parent=self.view.scene)
        self.chosen.order, self.outline.order = -1, -2
        for markers in (self.markers, self.chosen):
            markers.set_data(np.zeros((1, 2), np.float32))
            markers.visible = False
        self.xy = np.zeros((0, 2))
        self.grid: DensityGrid | None = None
        self.mode = "pan"
        self._drag: list[np.ndarray] = []
        for name in ("mouse_press", "mouse_move", "mouse_release"):
            getattr(self.canvas.events, name).connect(getattr(self, f"_{name}"))

    @property
    def native(self):
        """The Qt widget to put in a layout."""
        return self.canvas.native

    def set_mode(self, mode: str) -> None:
        """``"pan"`` lets the camera move; ``"click"``, ``"box"``, ``"lasso"`` select."""
        self.mode = mode
        self.view.camera.interactive = mode == "pan"

    def set_points(self, xy: np.ndarray, colour: np.ndarray | None = None) -> None:
        """Draw ``xy`` ``(N, 2)``, coloured by ``colour`` ``(N,)`` (any scale) if given."""
        self.xy = np.ascontiguousarray(xy, np.float32)
        values = None if colour is None else np.asarray(colour, float)
        crowded = len(xy) > DENSITY_ABOVE
        self.grid = DensityGrid.of(self.xy) if crowded else None
        self.markers.visible, self.density.visible = not crowded, crowded
        if crowded:
            image = log_density(self.grid.counts())
            if values is not None:
                mean = self.grid.mean(values)
                lo, hi = np.nanpercentile(mean, [1, 99]) if np.isfinite(mean).any() else (0, 1)
                image = np.where(image > 0, np.clip((mean - lo) / (hi - lo or 1), 0, 1), np.nan)
            self.density.set_data(np.nan_to_num(image, nan=0.0).astype(np.float32))
            x0, x1, y0, y1 = self.grid.extent
            b = self.grid.bins
            self.density.transform = scene.STTransform(
                scale=((x1 - x0) / b, (y1 - y0) / b), translate=(x0, y0)
            )
        elif len(xy):
            face = (0.55, 0.75, 1.0, 0.8)
            if values is not None:
                lo, hi = np.nanpercentile(values, [1, 99])
                face = get_colormap("viridis").map(np.clip((values - lo) / (hi - lo or 1), 0, 1))
            self.markers.set_data(self.xy, face_color=face, edge_width=0, size=5)
        self.set_selected(np.zeros(len(xy), bool))
        self.reset_view()

    def reset_view(self) -> None:
        """Fit the camera to the points."""
        if len(self.xy):
            finite = self.xy[np.isfinite(self.xy).all(1)]
            lo, hi = finite.min(0), finite.max(0)
            pad = np.where(hi > lo, (hi - lo) * 0.05, 1.0)
            x = (lo[0] - pad[0], hi[0] + pad[0])
            self.view.camera.set_range(x=x, y=(lo[1] - pad[1], hi[1] + pad[1]), z=(0, 1), margin=0)

    def set_selected(self, mask: np.ndarray) -> None:
        """Draw the selected points on top, in orange (thinned beyond a limit)."""
        index = np.flatnonzero(mask)
        if index.size > MAX_SELECTED_MARKERS:
            index = index[:: -(-index.size // MAX_SELECTED_MARKERS)]
        self.chosen.visible = bool(index.size)
        if index.size:
            self.chosen.set_data(self.xy[index], face_color=SELECTED, edge_width=0, size=7)
        self.canvas.update()

    def _data_pos(self, pos) -> np.ndarray:
        return self.canvas.scene.node_transform(self.view.scene).map(pos)[:2]

    def _mouse_press(self, event) -> None:
        if self.mode in ("box", "lasso") and event.button == 1:
            self._drag = [self._data_pos(event.pos)]
        elif self.mode == "click" and event.button == 1:
            self.on_select("click", self._data_pos(event.pos)[None])

    def _mouse_move(self, event) -> None:
        if not self._drag or not event.is_dragging:
            return
        here = self._data_pos(event.pos)
        if self.mode == "box":
            (x0, y0), (x1, y1) = self._drag[0], here
            self._drag = [self._drag[0], here]
            path = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
        else:
            self._drag.append(here)
            path = np.array([*self._drag, self._drag[0]])
        self.outline.set_data(pos=path)
        self.canvas.update()

    def _mouse_release(self, event) -> None:
        if len(self._drag) >= 2:
            self.on_select(self.mode, np.array(self._drag))
        self._drag = []
        self.outline.set_data(pos=np.zeros((0, 2)))
        self.canvas.update()

    def pixel_size(self) -> float:
        """One screen pixel in data units (for click tolerance)."""
        a = self._data_pos((0, 0))
        b = self._data_pos((1, 1))
        return float(np.abs(b - a).max())
