"""Per-channel intensity statistics, streamed with dask in bounded memory.

Stored by ingest under the image group's attributes as::

    attrs["cellvae"] = {"version": 1, "stats": {
        "dtype": "uint16", "bits": 12,
        "channels": [{"percentiles": {"0.1": v, "1": v, "50": v, "99": v, "99.9": v},
                      "mean": v, "std": v, "min": v, "max": v}, ...]}}

One entry per index of the ``c`` axis (one entry without a ``c`` axis), pooled over time and
space. Min, max, mean and std are exact over the finite voxels; percentiles are exact when a
channel has at most ``sample_voxels`` voxels, else computed on a seeded random subset of whole
chunks. ``bits`` is ``ceil(log2(max + 1))`` over all channels for non-negative integer data
(12 for 12-bit data stored as uint16), the dtype width for signed data with negative values,
and ``None`` for floating-point data.
"""

from __future__ import annotations

import math
import warnings

import dask.array as da
import numpy as np

from cellvae.errors import CellvaeError

PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)
#: voxels per channel above which percentiles come from a random subset of chunks
SAMPLE_VOXELS = 2**22


def _key(p: float) -> str:
    return f"{p:g}"


def _sample_chunks(channel: da.Array, budget: int, seed: int) -> np.ndarray:
    """Finite values (float64) of random whole chunks of ``channel``, at least ``budget`` of them.

    Chunks are drawn in a seeded random order and read one at a time until they hold
    ``budget`` finite voxels (or the channel is exhausted), so chunks of NaN padding cannot
    leave the sample empty while the image has finite voxels.
    """
    if channel.size <= budget:
        chunks = [channel]
    else:
        blocks = list(np.ndindex(*channel.numblocks))
        order = np.random.default_rng(seed).permutation(len(blocks))
        chunks = (channel.blocks[blocks[i]] for i in order)
    picked, total = [np.empty(0)], 0
    for chunk in chunks:
        values = np.asarray(chunk.compute(), dtype=np.float64).ravel()
        picked.append(values[np.isfinite(values)])
        total += picked[-1].size
        if total >= budget:
            break
    return np.concatenate(picked)


def _channel_views(data: da.Array, axes: str) -> list[da.Array]:
    if "c" not in axes:
        return [data]
    c = axes.index("c")
    return [data[(slice(None),) * c + (i,)] for i in range(data.shape[c])]


def _bits(dtype: np.dtype, lo: float, hi: float) -> int | None:
    if dtype.kind not in "ui":
        return None
    if lo < 0:
        return dtype.itemsize * 8
    return max(1, math.ceil(math.log2(hi + 1)))


def intensity_stats(
    data: da.Array, axes: str, sample_voxels: int = SAMPLE_VOXELS, seed: int = 0
) -> dict:
    """Per-channel percentiles (0.1, 1, 50, 99, 99.9), mean, std, min, max, plus dtype/bits.

    Non-finite voxels (NaN, inf) are ignored. Peak memory is about ``sample_voxels`` float64
    values per channel plus a few dask chunks.
    """
    data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    dtype = np.dtype(data.dtype)
    views = _channel_views(data, axes)
    lazy = []
    for ch in views:
        finite = ch.astype(np.float64)
        if dtype.kind == "f":
            finite = da.where(da.isfinite(finite), finite, np.nan)
        lazy.append(
            (
                da.nanmin(finite),
                da.nanmax(finite),
                da.nanmean(finite),
                da.nanstd(finite),
                da.isfinite(finite).sum(),
            )
        )
    with warnings.catch_warnings():  # all-NaN channels warn; they are reported as None
        warnings.simplefilter("ignore", RuntimeWarning)
        reduced = da.compute(*lazy)
    channels = []
    for i, (ch, (lo, hi, mean, std, count)) in enumerate(zip(views, reduced)):
        if count == 0:
            channels.append(None)
            continue
        sample = _sample_chunks(ch, sample_voxels, seed + i)
        values = np.percentile(sample, PERCENTILES) if sample.size else [float("nan")] * 5
        channels.append(
            {
                "percentiles": {_key(p): float(v) for p, v in zip(PERCENTILES, values)},
                "mean": float(mean),
                "std": float(std),
                "min": float(lo),
                "max": float(hi),
            }
        )
    finite = [c for c in channels if c is not None]
    bits = (
        _bits(dtype, min(c["min"] for c in finite), max(c["max"] for c in finite))
        if finite
        else None
    )
    return {"dtype": dtype.name, "bits": bits, "channels": channels}


def check_stats(stats: dict, source: str) -> None:
    """Refuse images that cannot be normalised: no finite voxel, or a constant channel.

    A constant channel has equal low and high percentiles, so percentile normalisation
    ``(v - lo) / (hi - lo)`` is undefined; ingest refuses it rather than guessing a range.
    """
    for i, ch in enumerate(stats["channels"]):
        where = f" (channel {i})" if len(stats["channels"]) > 1 else ""
        if ch is None:
            raise CellvaeError(f"{source}: image has no finite values (all NaN or inf){where}")
        if ch["min"] == ch["max"]:
            raise CellvaeError(
                f"{source}: image is constant (every voxel is {ch['min']:g}){where}; "
                "intensity normalisation is undefined"
            )
