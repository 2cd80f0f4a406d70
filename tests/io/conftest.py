"""Tiny test images written to disk: TIFF flavours and OME-Zarr 0.4."""

from __future__ import annotations

from pathlib import Path

import lightning  # noqa: F401  (see below)
import numpy as np
import pytest

# ``import lightning`` binds a log handler to the sys.stderr of that moment. Imported first
# inside a test that captures stderr (capsys), the handler keeps that test's closed buffer, and
# a later test's Lightning log line ("Seed set to 0") fails with "--- Logging error ---".
# Importing it here, at collection, binds it to pytest's session-wide stream instead, so the
# io tests pass in any order (mutmut runs them in an arbitrary one).


@pytest.fixture
def volume(rng: np.random.Generator) -> np.ndarray:
    """A 16x64x64 uint16 volume of 12-bit values with a bright cube, so stats are non-trivial."""
    vol = rng.integers(100, 200, size=(16, 64, 64), dtype=np.uint16)
    vol[4:12, 16:48, 16:48] = 4095
    return vol


@pytest.fixture
def imagej_tiff(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An ImageJ hyperstack TZCYX (2, 4, 3, 32, 32), 0.25 µm pixels, 2 µm z spacing."""
    import tifffile

    data = np.arange(2 * 4 * 3 * 32 * 32, dtype=np.uint16).reshape(2, 4, 3, 32, 32)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"spacing": 2.0, "unit": "micron", "axes": "TZCYX"},
    )
    return path, data


@pytest.fixture
def ome_tiff(tmp_path: Path, volume: np.ndarray) -> Path:
    """An OME-TIFF with two series: CZYX (2, 16, 64, 64) and a 2D YX (32, 48) image."""
    import tifffile

    path = tmp_path / "multi.ome.tif"
    data = np.stack([volume, volume // 2])
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(
            data,
            metadata={
                "axes": "CZYX",
                "PhysicalSizeX": 0.3,
                "PhysicalSizeY": 0.3,
                "PhysicalSizeZ": 1.5,
            },
        )
        tw.write(np.ones((32, 48), np.uint8), metadata={"axes": "YX", "PhysicalSizeX": 0.7})
    return path


@pytest.fixture
def ngff04(tmp_path: Path, volume: np.ndarray) -> Path:
    """An NGFF 0.4 (zarr v2) image written by ome-zarr-py, with a label image."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_labels

    path = tmp_path / "v04.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(
        volume,
        group,
        fmt=FormatV04(),
        axes="zyx",
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        axes_units={a: "micrometer" for a in "zyx"},
        scale_factors=[2],
    )
    write_labels(
        (volume > 1000).astype(np.uint8),
        group,
        name="cells",
        fmt=FormatV04(),
        axes="zyx",
        scale_factors=[2],
    )
    return path
