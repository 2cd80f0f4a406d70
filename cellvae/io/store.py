"""Chunk layout and streamed writes of dask arrays into zarr arrays."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import zarr

#: bytes per dask block while streaming: bounds peak memory at a few times this per thread
IO_BLOCK_BYTES = 64 * 2**20
#: above this many chunks, level 0 is written in shards (fewer, larger files)
SHARD_MIN_CHUNKS = 4096
#: 2D chunks below this side are small ones, for streaming: their shards are smaller too
SMALL_CHUNK = 64


def default_chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """Chunks for patch reads: 64 per spatial axis in 3D, 256 in 2D, 1 along t and c."""
    side = 64 if "z" in axes else 256
    return tuple(1 if a in "tc" else min(side, s) for a, s in zip(axes, shape))


def default_shards(
    shape: tuple[int, ...], chunks: tuple[int, ...], axes: str
) -> tuple[int, ...] | None:
    """Shards of 4 chunks per spatial axis (8 in 2D) when the array has many chunks.

    2D chunks smaller than 64 (``--chunks 16 16``, for streaming patches over HTTP/S3) get 4
    per side: a reader fetches the index of every shard a patch touches, 16 bytes per chunk
    of the shard, so shards about the size of a patch keep that overhead small (a 64² patch
    with 16² chunks: ~1 KB of indexes in 64² shards, ~2.3 KB in 128² shards).
    """
    n_chunks = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks))
    if n_chunks < SHARD_MIN_CHUNKS:
        return None
    small = min(c for a, c in zip(axes, chunks) if a in "yx") < SMALL_CHUNK
    k = 4 if "z" in axes or small else 8
    return tuple(
        c if a in "tc" else c * min(k, math.ceil(s / c)) for a, s, c in zip(axes, shape, chunks)
    )


def io_chunks(
    shape: tuple[int, ...], block: tuple[int, ...], itemsize: int, budget: int = IO_BLOCK_BYTES
) -> tuple[int, ...]:
    """Dask chunks that are whole multiples of ``block`` (a zarr chunk or shard), as large as
    ``budget`` bytes allows, grown from the last (fastest) axis first."""
    out = [min(b, s) for b, s in zip(block, shape)]
    for i in reversed(range(len(shape))):
        rest = itemsize * math.prod(out[:i] + out[i + 1 :])
        k = max(1, min(math.ceil(shape[i] / block[i]), budget // max(1, rest * block[i])))
        out[i] = min(shape[i], k * block[i])
        if k * block[i] < shape[i]:
            break
    return tuple(out)


def write_block(arr: zarr.Array) -> tuple[int, ...]:
    """The unit one writer must own in ``arr``: its shard shape, else its chunk shape."""
    return tuple(arr.shards or arr.chunks)


def read_dask(arr: zarr.Array, budget: int = IO_BLOCK_BYTES) -> da.Array:
    """A dask view of ``arr`` in blocks of whole chunks/shards of about ``budget`` bytes
    (never less than one chunk/shard): few tasks even when the chunks are small (16² chunks
    for streaming make 65536 of them on a 4096² image, and as many dask tasks)."""
    chunks = io_chunks(arr.shape, write_block(arr), np.dtype(arr.dtype).itemsize, budget)
    return da.from_zarr(arr, chunks=chunks)


def store_dask(data: da.Array, arr: zarr.Array, progress: bool = False, desc: str = "") -> None:
    """Stream ``data`` into ``arr`` block by block; each block covers whole chunks/shards,
    so no two tasks write the same chunk."""
    chunks = io_chunks(arr.shape, write_block(arr), np.dtype(arr.dtype).itemsize)
    data = data.rechunk(chunks)
    if progress:
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc or "writing", leave=False):
            da.store(data, arr, lock=False)
    else:
        da.store(data, arr, lock=False)
