"""Axis strings, dtypes and unit names against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.io.axes import check_dtype, ngff_order, normalize_axes, normalize_unit, spatial_axes


@pytest.mark.parametrize(
    ("given", "ndim", "expected"),
    [(" ZYX ", 3, "zyx"), ("yx", None, "yx"), ("XYct", 4, "xyct"), ("tczyx", 5, "tczyx")],
)
def test_normalize_axes_lower_cases_and_keeps_the_order(given, ndim, expected):
    assert normalize_axes(given, ndim) == expected


@pytest.mark.parametrize("bad", ["zyq", "yyx", "zx", "zy", "y", "", "cyx1"])
def test_normalize_axes_refuses_bad_letters_repeats_and_missing_y_or_x(bad):
    with pytest.raises(
        CellvaeError,
        match=rf"^img\.tif: axes '{bad}' must be distinct letters of 'tczyx' including y and x$",
    ):
        normalize_axes(bad, source="img.tif")


def test_normalize_axes_checks_the_number_of_dimensions():
    with pytest.raises(
        CellvaeError, match=r"^--axes: axes 'ZYX' have 3 letters but the data has 2 dimensions$"
    ):
        normalize_axes("ZYX", 2)


@pytest.mark.parametrize(
    ("axes", "ngff", "spatial"),
    [
        ("xyzct", "tczyx", "xyz"),
        ("yxc", "cyx", "yx"),
        ("xczy", "czyx", "xzy"),
        ("ty x", "tyx", "yx"),
    ],
)
def test_ngff_order_and_spatial_axes(axes, ngff, spatial):
    assert ngff_order(axes) == ngff
    assert spatial_axes(axes) == spatial


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int64, np.float16, np.float64])
def test_integer_and_float_dtypes_are_accepted(dtype):
    assert check_dtype(dtype, "x") == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [bool, np.complex64, np.longdouble, object, "U4"])
def test_other_dtypes_are_refused_naming_the_source(dtype):
    if np.dtype(dtype).itemsize <= 8 and np.dtype(dtype).kind == "f":
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(
        CellvaeError,
        match=rf"^img\.tif: unsupported data type {np.dtype(dtype)}; expected integers or floats$",
    ):
        check_dtype(dtype, "img.tif")


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        ("µm", "micrometer"),
        ("\u03bcm", "micrometer"),
        ("\\u00B5m", "micrometer"),
        ("\\u00b5m", "micrometer"),
        (" um ", "micrometer"),
        ("Micron", "micrometer"),
        ("microns", "micrometer"),
        ("microm", "micrometer"),
        ("nm", "nanometer"),
        ("mm", "millimeter"),
        ("cm", "centimeter"),
        ("m", "meter"),
        ("Å", "angstrom"),
        ("A", "angstrom"),
        ("pm", "picometer"),
        ("s", "second"),
        ("sec", "second"),
        ("ms", "millisecond"),
        ("min", "minute"),
        ("h", "hour"),
        ("Micrometer", "micrometer"),
        ("Furlong", "furlong"),
    ],
)
def test_units_map_to_ngff_names(unit, name):
    assert normalize_unit(unit) == name


@pytest.mark.parametrize("unit", [None, "", "  ", "pixel", "Pixels", "PX", "none"])
def test_no_physical_unit_is_none(unit):
    assert normalize_unit(unit) is None
