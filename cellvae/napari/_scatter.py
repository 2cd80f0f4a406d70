"""A vispy scatter canvas for the latent browser: markers, or a density image when crowded.

napari already ships vispy, and its GPU markers and a binned density image keep a million
points interactive. The plot has titled axes whose ticks follow every resize (also the first
layout in a dock) in fixed-width margins, so that labels are not clipped in a narrow dock,
and a colour bar when the points are coloured by a column. In the density image an empty
bin is transparent, not the colour of zero. The canvas reports selections (click, box,
lasso) in data units through ``on_select(kind, geometry)``; it knows nothing about cells.
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
COLORMAP = "viridis"
#: pixels kept for the left axis (tick labels and title) and the bottom axis
LEFT_PX, BOTTOM_PX, COLORBAR_PX = 64, 44, 72


class _Axis(scene.AxisWidget):
    """An axis whose ticks are recomputed when it is resized, not only when the view pans.

    vispy's axis updates its domain on camera changes only; after the first layout (or any
    resize of the dock) its ticks would label the old extent.
    """

    def on_resize(self, event) -> None:
        super().on_resize(event)
        if self._linked_view is not None:
            self._view_changed()


def density_rgba(
    counts: np.ndarray, values: np.ndarray | None = None, limits: tuple[float, float] = (0, 1)
) -> np.ndarray:
    """An RGBA image ``(bins, bins, 4)`` of binned points: empty bins fully transparent.

    Without ``values`` a bin's colour is its log density; with ``values`` (the mean of the
    colour column per bin) it is that mean between ``limits``.
    """
    level = (
        log_density(counts)
        if values is None
        else (values - limits[0]) / ((limits[1] - limits[0]) or 1.0)
    )
    rgba = get_colormap(COLORMAP).map(np.clip(np.nan_to_num(level), 0, 1).ravel())
    rgba = rgba.reshape(*counts.shape, 4).astype(np.float32)
    rgba[..., 3] = np.where(counts > 0, 1.0, 0.0)
    return rgba


def colour_limits(values: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite values: the colour scale's ends."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1.0)


class ScatterCanvas:
    """The plot: ``set_points``, ``set_selected``; ``mode`` is pan, click, box or lasso."""

    def __init__(self, on_select: Callable[[str, np.ndarray], None]) -> None:
        self.on_select = on_select
        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=BACKGROUND, size=(360, 320))
        # never narrower than its fixed margins: a plot of no size has no inverse transform
        self.canvas.native.setMinimumSize(LEFT_PX + COLORBAR_PX + 96, BOTTOM_PX + 96)
        grid = self.canvas.central_widget.add_grid(margin=4)
        self.view = grid.add_view(row=0, col=1)
        self.view.camera = scene.PanZoomCamera(aspect=None)
        style = {"text_color": "w", "axis_color": "w", "tick_color": "w", "axis_font_size": 9}
        self.y_axis = _Axis(orientation="left", axis_label_margin=44, **style)
        self.x_axis = _Axis(orientation="bottom", axis_label_margin=30, **style)
        self.y_axis.width_min = self.y_axis.width_max = LEFT_PX
        self.x_axis.height_min = self.x_axis.height_max = BOTTOM_PX
        grid.add_widget(self.y_axis, row=0, col=0)
        grid.add_widget(self.x_axis, row=1, col=1)
        for axis in (self.y_axis, self.x_axis):
            axis.link_view(self.view)
        self.colorbar = scene.ColorBarWidget(
            COLORMAP, "right", label="", label_color="w", clim=(0, 1), axis_ratio=0.12
        )
        self.colorbar.width_min = self.colorbar.width_max = COLORBAR_PX
        grid.add_widget(self.colorbar, row=0, col=2)
        self.colorbar.visible = False
        self.markers = scene.Markers(parent=self.view.scene)
        self.density = scene.Image(np.zeros((2, 2, 4), np.float32), parent=self.view.scene)
        self.chosen = scene.Markers(parent=self.view.scene)
        self.outline = scene.Line(color="white", width=1.5, parent=self.view.scene)
        self.chosen.order, self.outline.order = -1, -2
        for markers in (self.markers, self.chosen):
            markers.set_data(np.zeros((1, 2), np.float32))
            markers.visible = False
        self.xy = np.zeros((0, 2))
        self.grid: DensityGrid | None = None
        self.limits: tuple[float, float] | None = None
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

    def set_titles(self, x: str, y: str) -> None:
        """The axis titles (the columns plotted)."""
        self.x_axis.axis.axis_label = x
        self.y_axis.axis.axis_label = y

    def set_points(
        self, xy: np.ndarray, colour: np.ndarray | None = None, colour_name: str = ""
    ) -> None:
        """Draw ``xy`` ``(N, 2)``, coloured by ``colour`` ``(N,)`` (any scale) if given.

        Colours span the 1st..99th percentile of ``colour``; the colour bar shows that scale
        under the title ``colour_name``.
        """
        self.xy = np.ascontiguousarray(xy, np.float32)
        values = None if colour is None else np.asarray(colour, float)
        self.limits = None if values is None else colour_limits(values)
        crowded = len(xy) > DENSITY_ABOVE
        self.grid = DensityGrid.of(self.xy) if crowded else None
        self.markers.visible, self.density.visible = not crowded, crowded
        if crowded:
            counts = self.grid.counts()
            means = self.grid.mean(values) if values is not None else None
            self.density.set_data(density_rgba(counts, means, self.limits or (0, 1)))
            x0, x1, y0, y1 = self.grid.extent
            b = self.grid.bins
            self.density.transform = scene.STTransform(
                scale=((x1 - x0) / b, (y1 - y0) / b), translate=(x0, y0)
            )
        elif len(xy):
            face = (0.55, 0.75, 1.0, 0.8)
            if values is not None:
                lo, hi = self.limits
                face = get_colormap(COLORMAP).map(np.clip((values - lo) / (hi - lo), 0, 1))
            self.markers.set_data(self.xy, face_color=face, edge_width=0, size=5)
        self.colorbar.visible = self.limits is not None
        if self.limits is not None:
            self.colorbar.clim = tuple(f"{v:.3g}" for v in self.limits)
            self.colorbar.label = colour_name
        self.reset_view()

    def reset_view(self) -> None:
        """Fit the camera to the points."""
        finite = self.xy[np.isfinite(self.xy).all(1)] if len(self.xy) else self.xy
        if len(finite):
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
