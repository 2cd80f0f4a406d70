"""Axis names: lower-case NGFF letters, a subset of ``tczyx``."""

from __future__ import annotations

import numpy as np

from cellvae.errors import CellvaeError

#: NGFF storage order: time, channel, then space.
NGFF_ORDER = "tczyx"
SPATIAL = "zyx"


def normalize_axes(axes: str, ndim: int | None = None, source: str = "--axes") -> str:
    """Lower-case and validate an axes string (any order); check its length against ``ndim``.

    ``source`` names what is validated (a file or option) in the error message.
    """
    ax = axes.strip().lower()
    bad = sorted(set(ax) - set(NGFF_ORDER))
    if bad or len(set(ax)) != len(ax) or "y" not in ax or "x" not in ax:
        raise CellvaeError(
            f"{source}: axes {axes!r} must be distinct letters of 'tczyx' including y and x"
        )
    if ndim is not None and len(ax) != ndim:
        raise CellvaeError(
            f"{source}: axes {axes!r} have {len(ax)} letters but the data has {ndim} dimensions"
        )
    return ax


def ngff_order(axes: str) -> str:
    """The NGFF storage order (``t, c, z, y, x``) of the given axes."""
    return "".join(a for a in NGFF_ORDER if a in axes)


def spatial_axes(axes: str) -> str:
    """The spatial letters of ``axes`` in their order."""
    return "".join(a for a in axes if a in SPATIAL)


def check_dtype(dtype: np.dtype, source: str) -> np.dtype:
    """Accept integer and floating dtypes; refuse bool, complex and anything else."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise CellvaeError(f"{source}: unsupported data type {dtype}; expected integers or floats")
    return dtype


_UNIT_ALIASES = {
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "microm": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "å": "angstrom",
    "a": "angstrom",
    "pm": "picometer",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "min": "minute",
    "h": "hour",
}
_NO_UNIT = {"", "pixel", "pixels", "px", "none"}


def normalize_unit(unit: str | None) -> str | None:
    """Map a unit as written by OME, ImageJ or a user ('µm', 'micron') to its NGFF name.

    Returns ``None`` for "no physical unit" ('pixel', empty).
    """
    if unit is None:
        return None
    u = str(unit).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if u.lower() in _NO_UNIT:
        return None
    return _UNIT_ALIASES.get(u.lower(), _UNIT_ALIASES.get(u, u.lower()))
