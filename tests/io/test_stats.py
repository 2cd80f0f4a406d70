"""Intensity statistics against numpy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.io.stats import PERCENTILES, check_stats, intensity_stats


def test_stats_match_numpy_per_channel(volume):
    data = np.stack([volume, volume // 4 + 7])
    stats = intensity_stats(da.from_array(data, chunks=(1, 8, 32, 32)), "czyx")
    assert stats["dtype"] == "uint16" and stats["bits"] == 12  # max 4095 in uint16
    for ch, ref in zip(stats["channels"], data):
        assert list(ch["percentiles"]) == ["0.1", "1", "50", "99", "99.9"]
        np.testing.assert_allclose(
            list(ch["percentiles"].values()), np.percentile(ref, PERCENTILES)
        )
        assert ch["min"] == ref.min() and ch["max"] == ref.max()
        assert ch["mean"] == pytest.approx(ref.mean()) and ch["std"] == pytest.approx(ref.std())


def test_nan_voxels_are_ignored_and_float_has_no_bit_depth(rng):
    data = rng.normal(size=(4, 32, 32)).astype(np.float32)
    data[0] = np.nan
    stats = intensity_stats(da.from_array(data, chunks=(2, 16, 16)), "zyx")
    finite = data[1:]
    (ch,) = stats["channels"]
    assert stats["bits"] is None
    assert ch["mean"] == pytest.approx(finite.mean(), rel=1e-5)
    assert ch["percentiles"]["50"] == pytest.approx(np.median(finite), rel=1e-5)


def test_sampled_percentiles_use_whole_chunks_and_stay_close(rng):
    data = rng.integers(0, 1000, size=(32, 64, 64)).astype(np.uint16)
    arr = da.from_array(data, chunks=(8, 32, 32))
    stats = intensity_stats(arr, "zyx", sample_voxels=4 * 8 * 32 * 32)  # 4 of 16 chunks
    (ch,) = stats["channels"]
    assert ch["min"] == data.min() and ch["max"] == data.max()  # exact regardless of sampling
    assert ch["percentiles"]["50"] == pytest.approx(np.median(data), abs=15)
    assert stats["bits"] == 10


def test_check_stats_refuses_all_nan_and_constant_images():
    nan = intensity_stats(da.full((4, 8, 8), np.nan, dtype=np.float32), "zyx")
    with pytest.raises(CellvaeError, match=r"img.tif: image has no finite values"):
        check_stats(nan, "img.tif")
    const = intensity_stats(da.full((4, 8, 8), 7, dtype=np.uint8), "zyx")
    with pytest.raises(CellvaeError, match=r"img.tif: image is constant \(every voxel is 7\)"):
        check_stats(const, "img.tif")
