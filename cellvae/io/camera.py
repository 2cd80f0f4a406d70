"""The camera behind an image (gain, offset, read noise), as its metadata records it.

OME-Zarr images written by cellvae keep it under the group's ``cellvae`` attribute,
``{"camera": {"gain": ..., "offset": ..., "read_noise": ..., "source": "..."}}`` (the
synthetic samples record their generator's parameters there). OME-TIFF files may carry a
detector's ``Gain`` and ``Offset`` in their OME-XML (``DetectorSettings`` of the image's
channel, else the instrument's ``Detector``); OME has no read noise. Values are in the image's
output units: gain in units per photon, offset and read noise in units.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

#: key of the camera block inside the image group's ``cellvae`` attribute
CAMERA_KEY = "camera"
#: the parameters a camera block may hold
PARAMETERS = ("gain", "offset", "read_noise")


def write_camera(path: str | os.PathLike, camera: dict) -> None:
    """Store ``camera`` (``gain``, ``offset``, ``read_noise``, ``source``) with an image."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    entry = dict(group.attrs.get("cellvae", {}))
    group.attrs["cellvae"] = {**entry, CAMERA_KEY: dict(camera)}


def _ome_tiff_camera(path: Path) -> dict | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata if tif.is_ome else None
    if not xml:
        return None
    root = ET.fromstring(xml)
    found: dict = {}
    for tag in ("DetectorSettings", "Detector"):
        for node in root.iter():
            if node.tag.rsplit("}", 1)[-1] != tag:
                continue
            for name, key in (("Gain", "gain"), ("Offset", "offset")):
                if key not in found and node.get(name) is not None:
                    found[key] = float(node.get(name))
    if not found:
        return None
    return {**found, "source": f"{path.name}: OME-XML detector settings"}


def read_camera(path: str | os.PathLike) -> dict | None:
    """The camera recorded with an image: ``{"gain"?, "offset"?, "read_noise"?, "source"}``
    with only the parameters known, or None when the metadata says nothing about it."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            return _ome_tiff_camera(path)
        except (OSError, ValueError, ET.ParseError):
            return None
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:
        return None
    camera = (attrs.get("cellvae") or {}).get(CAMERA_KEY)
    if not isinstance(camera, dict):
        return None
    known = {k: float(camera[k]) for k in PARAMETERS if camera.get(k) is not None}
    if not known:
        return None
    return {**known, "source": str(camera.get("source", f"{path.name}: cellvae.camera"))}
