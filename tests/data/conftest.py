"""Fixtures for the data tests: small OME-Zarr volumes with known content and statistics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

PERCENTILES = (0.1, 1, 50, 99, 99.9)


def channel_stats(values: np.ndarray) -> dict:
    """Statistics of one channel in the stored format (percentile keys like ``"99.9"``)."""
    v = values.astype(np.float64).ravel()
    return {
        "percentiles": {f"{p:g}": float(np.percentile(v, p)) for p in PERCENTILES},
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def image_stats(data: np.ndarray, axes: str) -> dict:
    """Per-channel statistics of ``data`` with ``axes`` (the ``cellvae`` attribute)."""
    per_channel = np.moveaxis(data, axes.index("c"), 0) if "c" in axes else data[None]
    bits = np.iinfo(data.dtype).bits if data.dtype.kind in "ui" else None
    return {
        "dtype": str(data.dtype),
        "bits": bits,
        "channels": [channel_stats(c) for c in per_channel],
    }


def write_volume(path: Path, data: np.ndarray, axes: str, chunks=None, stats=True) -> str:
    """Write ``data`` as a one-level OME-Zarr image with statistics; return its path."""
    from cellvae.io.omezarr import write_image

    write_image(
        path,
        data,
        axes,
        chunks=chunks,
        stats=image_stats(data, axes) if stats else None,
        n_levels=1,
        shards=None,
    )
    return str(path)


@pytest.fixture
def make_volume(tmp_path: Path) -> Callable[..., str]:
    """``make_volume(data, axes, name=..., chunks=...)`` -> path of a new OME-Zarr image."""
    counter = iter(range(10_000))

    def make(data: np.ndarray, axes: str, name: str | None = None, **kwargs) -> str:
        return write_volume(tmp_path / (name or f"vol{next(counter)}.zarr"), data, axes, **kwargs)

    return make


@pytest.fixture
def ramp_3d(make_volume) -> tuple[str, np.ndarray]:
    """A (20, 24, 28) uint16 volume whose every voxel is distinct: v = 1000 + linear index."""
    data = (1000 + np.arange(20 * 24 * 28)).reshape(20, 24, 28).astype(np.uint16)
    return make_volume(data, "zyx"), data


def sparse_blobs(
    shape: tuple[int, ...], rng: np.random.Generator, n: int = 6, side: int = 16
) -> np.ndarray:
    """Mostly-empty uint16 image: noise around 100 with ``n`` bright squares/cubes (2000).

    With the defaults on (256, 256) the blobs cover about 2 % of the pixels, so the stored
    median is background and the 99th percentile lies inside a blob.
    """
    data = rng.normal(100, 5, size=shape).clip(0, None).astype(np.uint16)
    for _ in range(n):
        o = [int(rng.integers(0, s - side)) for s in shape]
        data[tuple(slice(a, a + side) for a in o)] = 2000
    return data
