"""Vendor microscopy formats (Zeiss CZI, Nikon ND2, Leica LIF, ...) read through bioio.

``bioio`` and its reader plugins (the ``formats`` extra: ``bioio-czi``, ``bioio-nd2``,
``bioio-lif``, ``bioio-ome-tiff``, ``bioio-tifffile``) give every format the same view: a
dask array in ``TCZYX`` order per scene (a position or tile region of a multi-scene file),
physical pixel sizes in micrometres and channel names. :func:`open_vendor` turns that view
into what :func:`cellvae.io.ingest.ingest` streams: singleton ``t``/``c``/``z`` axes are
dropped (a plane is ``yx``), RGB samples become channels, voxel sizes and channel names are
kept.

Tested with CZI files written by ``pylibCZIrw`` (tests/io/test_vendor.py); ND2 and LIF are
read by their plugins (``nd2``, ``readlif``) but have no writer to test against here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dask.array as da

from cellvae.errors import CellvaeError, ConfigError

#: suffixes that always go through bioio (the formats extra)
VENDOR_SUFFIXES = (".czi", ".nd2", ".lif")
_NGFF = "tczyx"


@dataclass
class VendorImage:
    """One scene of a vendor file: lazy pixels in NGFF axis order and their metadata."""

    data: da.Array
    axes: str
    voxel_size: dict[str, float]
    units: dict[str, str]
    channel_names: list[str] | None
    scene: str
    scenes: tuple[str, ...]


def _bioio(path: Path):
    try:
        import bioio
    except ImportError:
        raise CellvaeError(
            f"{path}: reading {path.suffix or 'this'} files needs the formats extra (bioio): "
            "pip install 'cellvae[formats]'"
        ) from None
    return bioio


def _pick_scene(image, scene: str | int | None, path: Path) -> str:
    """Set the scene of a ``BioImage`` by index or name; returns its id."""
    scenes = tuple(str(s) for s in image.scenes)
    if scene is None:
        return scenes[0]
    text = str(scene)
    if text in scenes:
        pick = text
    elif text.lstrip("-").isdigit() and 0 <= int(text) < len(scenes):
        pick = scenes[int(text)]
    else:
        shown = ", ".join(f"{i}: {s}" for i, s in enumerate(scenes[:10]))
        more = ", ..." if len(scenes) > 10 else ""
        raise ConfigError(f"--scene: {text!r} is not a scene of {path} ({shown}{more})")
    image.set_scene(pick)
    return pick


def _squeeze(data: da.Array, order: str, path: Path) -> tuple[da.Array, str]:
    """Drop singleton axes, make RGB samples ``S`` the channels; refuse any other extra axis.

    Returns the data and its axes in NGFF order (a subset of ``tczyx``).
    """
    order = order.upper()
    if "S" in order and data.shape[order.index("S")] > 1:
        if "C" in order and data.shape[order.index("C")] > 1:
            raise CellvaeError(f"{path}: both channels and RGB samples; convert one away first")
        if "C" in order:
            c = order.index("C")
            data, order = data[(slice(None),) * c + (0,)], order[:c] + order[c + 1 :]
        order = order.replace("S", "C")
    index, kept = [], ""
    for letter, size in zip(order, data.shape):
        name = letter.lower()
        if size == 1 and name not in "yx":
            index.append(0)
        elif name in _NGFF and name not in kept:
            index.append(slice(None))
            kept += name
        else:
            raise CellvaeError(
                f"{path}: axis {letter!r} of size {size} is not one of T, C, Z, Y, X; "
                "export the image without it"
            )
    data = data[tuple(index)]
    ngff = "".join(a for a in _NGFF if a in kept)
    return data.transpose([kept.index(a) for a in ngff]), ngff


def _voxels(image, axes: str) -> tuple[dict[str, float], dict[str, str]]:
    sizes = image.physical_pixel_sizes
    voxel, units = {}, {}
    for a, value in (("z", sizes.Z), ("y", sizes.Y), ("x", sizes.X)):
        if a in axes and value is not None and float(value) > 0:
            voxel[a], units[a] = float(value), "micrometer"
    return voxel, units


@contextmanager
def open_vendor(path: str | os.PathLike, scene: str | int | None = None) -> Iterator[VendorImage]:
    """Open one scene (index or name; default the first) of a file bioio can read, lazily.

    Raises :class:`CellvaeError` (one line) when bioio or a reader for the format is missing,
    the file cannot be read, or ``scene`` is not in the file.
    """
    path = Path(path)
    bioio = _bioio(path)
    from bioio_base.exceptions import UnsupportedFileFormatError

    try:
        image = bioio.BioImage(path)
    except UnsupportedFileFormatError:
        raise CellvaeError(
            f"{path}: no bioio reader for this format is installed; "
            "pip install 'cellvae[formats]' (CZI, ND2, LIF, OME-TIFF)"
        ) from None
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CellvaeError(f"{path}: not readable ({type(err).__name__}: {reason})") from None
    try:
        picked = _pick_scene(image, scene, path)
        data, axes = _squeeze(image.dask_data, image.dims.order, path)
        voxel, units = _voxels(image, axes)
        names = [str(n) for n in image.channel_names or []] if "c" in axes else []
        n_channels = data.shape[axes.index("c")] if "c" in axes else 0
        yield VendorImage(
            data,
            axes,
            voxel,
            units,
            names if names and len(names) == n_channels else None,
            picked,
            tuple(str(s) for s in image.scenes),
        )
    finally:
        close = getattr(image, "close", None)
        if close is not None:
            close()
