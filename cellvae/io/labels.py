"""Label images inside an OME-Zarr image: ``image.zarr/labels/<name>`` (NGFF image-label)."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from cellvae.errors import CellvaeError
from cellvae.io.omezarr import open_image, write_image


def write_labels(
    image_path: str | os.PathLike,
    labels: np.ndarray | da.Array,
    name: str = "labels",
    overwrite: bool = False,
) -> Path:
    """Add an instance label image to the OME-Zarr image at ``image_path``.

    ``labels`` has the image's spatial shape (no ``c`` axis); it is stored as an NGFF 0.5
    multiscale with nearest-neighbour downsampling and registered in the ``labels`` group, so
    ``open_labels(image_path)`` and napari's OME-Zarr reader find it. Returns the label path.
    """
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_label_metadata

    image = open_image(image_path)
    axes = image.axes.replace("c", "")
    shape = tuple(s for a, s in zip(image.axes, image.shape, strict=True) if a != "c")
    if tuple(labels.shape) != shape:
        raise CellvaeError(
            f"{image_path}: labels of shape {tuple(labels.shape)} do not match the image's "
            f"{axes} shape {shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise CellvaeError(f"{image_path}: labels must be integers, got {labels.dtype}")
    group_path = Path(image_path) / "labels"
    group = zarr.open_group(str(group_path), mode="a")
    listed = group.attrs.get("ome", {}).get("labels", [])
    if name in listed and not overwrite:
        raise CellvaeError(f"{group_path / name}: labels exist; pass --overwrite to replace them")
    out = write_image(
        group_path / name,
        labels,
        axes,
        voxel_size=image.voxel_size,
        units=image.units,
        overwrite=overwrite,
        n_levels=len(image.levels),
        method="nearest",
    )
    if name not in listed:
        write_label_metadata(group, name, fmt=FormatV05(), source={"image": "../../"})
        # the labels group is an NGFF node too: it carries the version beside its list
        group.attrs["ome"] = {"version": FormatV05().version, **group.attrs["ome"]}
    return out
