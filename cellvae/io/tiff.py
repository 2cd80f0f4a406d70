"""Read TIFF, OME-TIFF and ImageJ hyperstacks lazily with tifffile.

Metadata (axes, shape, dtype, voxel sizes, units) comes from OME-XML or ImageJ tags; pixels
are exposed as a dask array over tifffile's zarr store, so a file is never read whole.
tifffile's axis letters map to NGFF ones: ``T→t, C→c, S→c (samples), Z→z, Y→y, X→x``; any
other letter (``Q``, ``I``: tifffile does not know what the planes are) needs ``axes=``.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np

from cellvae.errors import CellvaeError, ConfigError
from cellvae.io.axes import normalize_axes, normalize_unit

_LETTERS = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}
#: micrometres per TIFF ResolutionUnit (2 = inch, 3 = centimetre)
_RES_UNIT_UM = {2: 25400.0, 3: 10000.0}


@dataclass
class TiffMeta:
    """What one series of a TIFF file holds; ``to_dask()`` opens the pixels lazily.

    ``axes`` are lower-case NGFF letters in the series' storage order (e.g. ImageJ's
    ``"tzcyx"``); ``voxel_size``/``units`` cover the spatial axes.
    """

    path: Path
    series: int
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    voxel_size: dict[str, float]
    units: dict[str, str] = field(default_factory=dict)
    n_series: int = 1
    channel_names: list[str] | None = None
    _store: object = field(default=None, init=False, repr=False, compare=False)

    def to_dask(self) -> da.Array:
        """A dask array over the series, chunked by TIFF page or tile; call :meth:`close`
        (or use :func:`open_tiff`) when done."""
        import tifffile
        import zarr

        if self._store is None:
            self._store = tifffile.imread(self.path, aszarr=True, series=self.series)
        return da.from_zarr(zarr.open_array(self._store, mode="r"))

    def close(self) -> None:
        """Close the file handle held by :meth:`to_dask`."""
        if self._store is not None:
            self._store.close()
            self._store = None


class _Warnings(logging.Handler):
    """Collects tifffile's logged warnings, which is how it reports damaged files."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _map_axes(letters: str, path: Path, ndim: int, axes: str | None) -> str:
    if axes is not None:
        return normalize_axes(axes, ndim, source=str(path))
    mapped = "".join(_LETTERS.get(a, "?") for a in letters)
    if "?" in mapped or len(set(mapped)) != len(mapped):
        raise CellvaeError(
            f"{path}: unknown axes {letters!r}; give them with --axes (e.g. {'TCZYX'[-ndim:]})"
        )
    return normalize_axes(mapped, ndim, source=str(path))


def _ome_voxels(xml: str, series: int) -> tuple[dict[str, float], dict[str, str]]:
    root = ET.fromstring(xml)
    images = root.findall("{*}Image")
    if not images:
        return {}, {}
    pixels = images[min(series, len(images) - 1)].find("{*}Pixels")
    voxel, units = {}, {}
    for a in "zyx":
        size = pixels.get(f"PhysicalSize{a.upper()}") if pixels is not None else None
        if size is not None and float(size) > 0:
            voxel[a] = float(size)
            unit = normalize_unit(pixels.get(f"PhysicalSize{a.upper()}Unit", "µm"))
            if unit:
                units[a] = unit
    return voxel, units


def _ome_channel_names(xml: str, series: int) -> list[str] | None:
    """The ``Name`` of every channel of an OME image, or None if any is unnamed."""
    images = ET.fromstring(xml).findall("{*}Image")
    if not images:
        return None
    pixels = images[min(series, len(images) - 1)].find("{*}Pixels")
    names = [c.get("Name") for c in (pixels.findall("{*}Channel") if pixels is not None else [])]
    return names if names and all(names) else None


def _unescape(text: str | None) -> str | None:
    """ImageJ writes non-ASCII units escaped (Å as ``\\u00C5``); turn them back."""
    if text is None:
        return None
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), str(text))


def _tag_voxels(tif, page) -> tuple[dict[str, float], dict[str, str]]:
    """Voxel sizes from resolution tags, and ImageJ's ``spacing``/``unit``."""
    voxel, units = {}, {}
    ij = tif.imagej_metadata or {}
    res_unit = int(getattr(page.tags.get("ResolutionUnit"), "value", 1) or 1)
    unit = normalize_unit(_unescape(ij.get("unit"))) if ij else None
    scale = 1.0
    if not unit and res_unit in _RES_UNIT_UM:
        unit, scale = "micrometer", _RES_UNIT_UM[res_unit]
    if ij or res_unit in _RES_UNIT_UM:
        for a, tag in (("x", "XResolution"), ("y", "YResolution")):
            value = getattr(page.tags.get(tag), "value", None)
            if value and value[0] > 0 and tuple(value) != (1, 1):
                voxel[a] = scale * value[1] / value[0]
    if ij.get("spacing"):
        voxel["z"] = float(ij["spacing"])
    if unit:
        units = {a: unit for a in voxel}
    return voxel, units


def _check_complete(path: Path, series, pages_warned: list[str]) -> None:
    size = path.stat().st_size
    if pages_warned:
        raise CellvaeError(f"{path}: truncated or corrupt TIFF ({pages_warned[0]})")
    if series.dataoffset is not None and series.dataoffset + series.nbytes > size:
        raise CellvaeError(
            f"{path}: truncated TIFF (data ends at byte {series.dataoffset + series.nbytes}, "
            f"file has {size})"
        )
    last = series.pages[-1] if len(series.pages) else None
    offsets = getattr(last, "dataoffsets", None)
    if offsets and offsets[-1] + last.databytecounts[-1] > size:
        raise CellvaeError(f"{path}: truncated TIFF (last plane lies beyond the end of file)")


def read_tiff_meta(path: str | os.PathLike, series: int = 0, axes: str | None = None) -> TiffMeta:
    """Read the metadata of one series of a TIFF / OME-TIFF / ImageJ file (no pixels).

    ``axes`` (any case, storage order of the series, e.g. ``"ZYX"``) overrides the inferred
    axes. Raises :class:`CellvaeError` naming the file for missing, empty, non-TIFF or
    truncated files.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise CellvaeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CellvaeError(f"{path}: file is empty")
    handler = _Warnings()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        with tifffile.TiffFile(path) as tif:
            n_series = len(tif.series)
            if n_series == 0:
                raise CellvaeError(f"{path}: TIFF holds no image")
            if not 0 <= series < n_series:
                raise ConfigError(f"series: {series} out of range; {path} has {n_series}")
            s = tif.series[series]
            _check_complete(path, s, handler.messages)
            ax = _map_axes(s.axes, path, len(s.shape), axes)
            names = None
            if tif.is_ome:
                voxel, units = _ome_voxels(tif.ome_metadata, series)
                names = _ome_channel_names(tif.ome_metadata, series)
            else:
                voxel, units = _tag_voxels(tif, s.keyframe)
    except tifffile.TiffFileError as err:
        raise CellvaeError(f"{path}: not a readable TIFF file ({err})") from None
    finally:
        logger.removeHandler(handler)
    voxel = {a: voxel.get(a, 1.0) for a in ax if a in "zyx"}
    units = {a: u for a, u in units.items() if a in ax}
    return TiffMeta(
        path=path,
        series=series,
        axes=ax,
        shape=tuple(int(n) for n in s.shape),
        dtype=np.dtype(s.dtype),
        voxel_size=voxel,
        units=units,
        n_series=n_series,
        channel_names=names
        if names and "c" in ax and len(names) == s.shape[ax.index("c")]
        else None,
    )


@contextmanager
def open_tiff(path: str | os.PathLike, series: int = 0, axes: str | None = None):
    """Context manager yielding ``(TiffMeta, dask array)``; closes the file on exit."""
    meta = read_tiff_meta(path, series, axes)
    try:
        yield meta, meta.to_dask()
    finally:
        meta.close()
