"""Moving the viewer to a place given in a layer's data coordinates."""

from __future__ import annotations

import numpy as np


def go_to(viewer, layer, data_position) -> np.ndarray:
    """Centre the view on ``data_position`` of ``layer``; return the viewer world point.

    A layer's axes are the viewer's last ``layer.ndim`` axes; the other axes keep their
    current slice. Non-displayed axes are moved to the point, displayed ones are centred.
    """
    world = np.asarray(layer.data_to_world(np.asarray(data_position, float)), float)
    point = np.asarray(viewer.dims.point, float)
    point[len(point) - len(world) :] = world
    for axis in viewer.dims.not_displayed:
        if axis >= len(point) - len(world):
            viewer.dims.set_point(axis, point[axis])
    camera_of(viewer).center = tuple(point[list(viewer.dims.displayed)])
    return point


def camera_of(viewer):
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
