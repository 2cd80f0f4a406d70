"""Moving the viewer to a place given in a layer's data coordinates, and marking it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the share of the canvas a region fills after :func:`go_to` zooms to it
FILL = 0.8
OUTLINE = "region outline"


def go_to(viewer, layer, data_position, extent: Sequence[float] | None = None) -> np.ndarray:
    """Centre the view on ``data_position`` of ``layer``; return the viewer world point.

    A layer's axes are the viewer's last ``layer.ndim`` axes; the other axes keep their
    current slice. Non-displayed axes are moved to the point, displayed ones are centred.
    With ``extent`` (the region's size in the layer's voxels, per axis or for the last two
    axes) the camera also zooms so that the region fills most of the canvas.
    """
    world = np.asarray(layer.data_to_world(np.asarray(data_position, float)), float)
    point = np.asarray(viewer.dims.point, float)
    point[len(point) - len(world) :] = world
    for axis in viewer.dims.not_displayed:
        if axis >= len(point) - len(world):
            viewer.dims.set_point(axis, point[axis])
    camera = camera_of(viewer)
    camera.center = tuple(point[list(viewer.dims.displayed)])
    if extent is not None:
        from cellvae.napari.viewport import canvas_size

        size = canvas_size(viewer)
        span = np.asarray(extent, float)[-2:] * np.abs(np.asarray(layer.scale, float)[-2:])
        if size is not None and np.all(span > 0):
            camera.zoom = float(FILL * np.min(np.asarray(size, float) / span))
    return point


def outline(viewer, layer, lo: Sequence[float], hi: Sequence[float]):
    """Outline the box ``[lo, hi]`` (the layer's data coordinates, last two axes) in a
    shapes layer "region outline" on the layer's grid, reused by later calls."""
    from cellvae.napari.layer_choice import add_beside

    (y0, x0), (y1, x1) = np.asarray(lo, float)[-2:], np.asarray(hi, float)[-2:]
    rectangle = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])
    grid = {"scale": list(layer.scale[-2:]), "translate": list(layer.translate[-2:])}
    if OUTLINE in viewer.layers:
        shapes = viewer.layers[OUTLINE]
        shapes.scale, shapes.translate = grid["scale"], grid["translate"]
        shapes.data = [rectangle]
        shapes.shape_type = ["rectangle"]
        return shapes
    return add_beside(
        viewer,
        [rectangle],
        kind="shapes",
        name=OUTLINE,
        shape_type="rectangle",
        edge_color="cyan",
        face_color="transparent",
        edge_width=2 * float(np.min(np.abs(layer.scale[-2:]))),
        metadata={"cellvae_kind": "outline"},
        **grid,
    )


def camera_of(viewer):
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
