"""Sampled intensity statistics: exact extremes wherever they sit, percentiles from enough chunks.

The sampling only draws a subset of whole chunks for the percentiles; min, max, mean and std
must stay exact over every finite voxel. The data here put the extremes where a sample of a
few chunks misses them, and give every chunk its own value so the sample's make-up can be read
off the percentiles.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellvae.io.stats import PERCENTILES, _sample_chunks, intensity_stats

CHUNK = (4, 4)
GRID = (4, 4)  # 16 chunks of 16 voxels
BUDGET = 2 * 16  # two chunks' worth: 14 of the 16 chunks are left out of the sample


def _chunk_ids() -> np.ndarray:
    """A 16 x 16 image whose every voxel holds the number of its 4 x 4 chunk (0..15)."""
    ids = np.arange(GRID[0] * GRID[1]).reshape(GRID)
    return np.kron(ids, np.ones(CHUNK, dtype=np.int64))


@pytest.mark.parametrize("chunk", range(GRID[0] * GRID[1]))
def test_min_and_max_are_exact_when_the_sample_misses_the_extremes(chunk):
    data = np.full((16, 16), 100, dtype=np.uint16)
    data[np.arange(16) % 2 == 0, :] = 200  # every chunk holds 100 and 200
    cy, cx = divmod(chunk, GRID[1])
    data[cy * 4 + 1, cx * 4 + 2] = 7  # one dark voxel in this chunk only
    other = (chunk + 5) % 16
    oy, ox = divmod(other, GRID[1])
    data[oy * 4 + 3, ox * 4] = 4000  # one bright voxel in another chunk
    stats = intensity_stats(da.from_array(data, chunks=CHUNK), "yx", sample_voxels=BUDGET)
    (ch,) = stats["channels"]
    assert (ch["min"], ch["max"]) == (7.0, 4000.0)
    assert stats["bits"] == 12  # from the true max 4000, not the sample's 200
    assert ch["mean"] == pytest.approx(data.mean()) and ch["std"] == pytest.approx(data.std())


def test_sample_holds_whole_distinct_chunks_up_to_the_budget():
    ids = da.from_array(_chunk_ids(), chunks=CHUNK)
    for budget in (1, 16, 17, 40, 100, 255):
        for seed in range(3):
            sample = _sample_chunks(ids, budget, seed)
            picked, counts = np.unique(sample, return_counts=True)
            assert np.all(counts == 16)  # whole chunks, none twice
            assert budget <= sample.size < budget + 16  # stops once the budget is reached
            assert len(picked) == -(-budget // 16)


def test_small_channel_is_used_whole():
    ids = da.from_array(_chunk_ids(), chunks=CHUNK)
    sample = _sample_chunks(ids, 256, 0)
    np.testing.assert_array_equal(np.sort(sample), np.sort(_chunk_ids().ravel()))


def test_sampled_percentiles_span_several_chunks():
    # each chunk is constant (its own id): a sample of one chunk would give equal percentiles
    data = da.from_array(_chunk_ids().astype(np.uint16), chunks=CHUNK)
    stats = intensity_stats(data, "yx", sample_voxels=8 * 16)  # 8 of 16 chunks
    pct = stats["channels"][0]["percentiles"]
    assert pct["99.9"] - pct["0.1"] >= 7  # eight distinct chunk values 0..15
    assert stats["channels"][0]["min"] == 0 and stats["channels"][0]["max"] == 15


@pytest.mark.parametrize("seed", range(8))
def test_chunks_of_nan_padding_do_not_leave_the_sample_empty(seed):
    # one chunk of real data among 15 of NaN padding, sampled two chunks' worth at a time:
    # the sample keeps drawing until it holds finite voxels (found bug: NaN percentiles)
    data = np.full((16, 16), np.nan, dtype=np.float32)
    data[8:12, 4:8] = np.arange(16).reshape(4, 4)
    stats = intensity_stats(da.from_array(data, chunks=CHUNK), "yx", BUDGET, seed=seed)
    pct = stats["channels"][0]["percentiles"]
    np.testing.assert_allclose(
        [pct[f"{p:g}"] for p in PERCENTILES], np.percentile(np.arange(16), PERCENTILES)
    )


def test_sampled_median_is_unbiased_over_seeds():
    # chunk ids 0..15 have median 7.5; a per-seed sample of 4 chunks scatters around it
    data = da.from_array(_chunk_ids().astype(np.float32), chunks=CHUNK)
    medians = [
        intensity_stats(data, "yx", sample_voxels=64, seed=s)["channels"][0]["percentiles"]["50"]
        for s in range(40)
    ]
    assert len(set(medians)) > 3  # the seed changes which chunks are drawn
    assert np.mean(medians) == pytest.approx(7.5, abs=1.0)


@pytest.mark.parametrize("axes", ["cyx", "ycx", "yxc", "tczyx"])
def test_channels_are_separated_wherever_the_c_axis_is(axes):
    sizes = {"t": 2, "c": 3, "z": 2, "y": 8, "x": 6}
    shape = tuple(sizes[a] for a in axes)
    c = axes.index("c")
    index = np.indices(shape)
    data = (1000 * index[c] + index[axes.index("y")] * 6 + index[axes.index("x")]).astype(np.int32)
    stats = intensity_stats(da.from_array(data, chunks=2), axes, sample_voxels=10)
    for i, ch in enumerate(stats["channels"]):
        assert (ch["min"], ch["max"]) == (1000 * i, 1000 * i + 47)
        assert ch["mean"] == pytest.approx(1000 * i + 23.5)


@pytest.mark.parametrize(
    ("values", "dtype", "bits"),
    [
        ([0, 4095], np.uint16, 12),
        ([0, 4096], np.uint16, 13),
        ([3, 255], np.uint8, 8),
        ([0, 1], np.uint8, 1),
        ([0, 0, 0, 1], np.int32, 1),
        ([-1, 5], np.int16, 16),
        ([-3, 5], np.int8, 8),
        ([0.0, 4095.0], np.float32, None),
    ],
)
def test_bit_depth_of_known_ranges(values, dtype, bits):
    data = da.from_array(np.array(values, dtype=dtype).reshape(1, -1), chunks=1)
    assert intensity_stats(data, "yx")["bits"] == bits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(1, 13), st.integers(1, 13)),
    chunks=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    budget=st.integers(1, 60),
    dtype=st.sampled_from([np.uint8, np.int16, np.float32, np.float64]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_exact_moments_and_bounded_sample_on_any_chunking(shape, chunks, budget, dtype, seed, data):
    rng = np.random.default_rng(seed)
    values = rng.integers(-50, 200, size=shape)
    if np.dtype(dtype).kind == "u":
        values = np.abs(values)
    values = values.astype(dtype)
    if np.dtype(dtype).kind == "f" and values.size > 1:
        holes = data.draw(st.lists(st.integers(0, values.size - 1), max_size=3))
        values.ravel()[holes] = np.nan  # ignored by every statistic
    finite = values[np.isfinite(values)].astype(np.float64)
    stats = intensity_stats(da.from_array(values, chunks=chunks), "yx", budget, seed)
    (ch,) = stats["channels"]
    if finite.size == 0:
        assert ch is None
        return
    assert (ch["min"], ch["max"]) == (finite.min(), finite.max())
    assert ch["mean"] == pytest.approx(finite.mean()) and ch["std"] == pytest.approx(finite.std())
    pct = np.array([ch["percentiles"][f"{p:g}"] for p in PERCENTILES])
    assert np.all(np.diff(pct) >= 0) and finite.min() <= pct[0] and pct[-1] <= finite.max()
    if values.size <= budget:  # small enough: percentiles are exact
        np.testing.assert_allclose(pct, np.percentile(finite, PERCENTILES))
