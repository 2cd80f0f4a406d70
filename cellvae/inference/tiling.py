"""Tiled inference over a whole image of any size, blended without seams, block by block.

The image is cut into a fixed global grid of overlapping tiles (:mod:`cellvae.inference.windows`)
and written in blocks aligned to the output chunks. For each block, every tile that touches it
is predicted (in batches), weighted by its window (a whole batch at once), summed in a fixed
order, and divided by the summed weight of the grid; the block is written and reported done.
Because the grid and the order of summation are global, a voxel gets the same value, bit for
bit, whichever block, part or rerun computes it, so blocks can be done in any order, split
between processes and skipped on a rerun. Memory is bounded by a few blocks, their touching
tiles, and a byte-bounded cache of weighted tile predictions shared with later blocks (so a
tile straddling two blocks is usually predicted once).

Reading, predicting and writing overlap: a reader thread fetches the next block's input while
the model runs, and a writer thread stores the previous block (and records it done) meanwhile.
"""

from __future__ import annotations

import functools
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cellvae.inference.layout import Layout
from cellvae.inference.windows import AxisTiling, axis_tiling, outer

#: ``predict(raw)``: tiles ``(B, C, *tile)`` float32 → one ``(B, C, *tile)`` array per output.
Predict = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass
class TilingStats:
    """What a run did: blocks written and skipped, tiles and voxels sent through the model."""

    blocks_written: int = 0
    blocks_skipped: int = 0
    tiles_predicted: int = 0
    voxels_predicted: int = 0
    cache_hits: int = 0
    written: list[int] = field(default_factory=list)


class _TileCache:
    """Tile predictions kept for later blocks, oldest dropped first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple, tuple[int, list[np.ndarray]]] = OrderedDict()
        self.nbytes = 0

    def get(self, key: tuple) -> list[np.ndarray] | None:
        item = self.items.get(key)
        return None if item is None else item[1]

    def put(self, key: tuple, last_block: int, preds: list[np.ndarray]) -> None:
        size = sum(p.nbytes for p in preds)
        if size > self.max_bytes:
            return
        self.items[key] = (last_block, preds)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self.items)))

    def expire(self, block: int) -> None:
        """Forget tiles that no block after ``block`` needs."""
        for key in [k for k, (last, _) in self.items.items() if last <= block]:
            self._drop(key)

    def _drop(self, key: tuple) -> None:
        _, preds = self.items.pop(key)
        self.nbytes -= sum(p.nbytes for p in preds)


def _pad_to(tile: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pad the spatial sides of ``(C, *S)`` at their end by mirroring, up to ``shape``."""
    pad = [(0, 0)] + [(0, t - s) for s, t in zip(tile.shape[1:], shape)]
    return np.pad(tile, pad, mode="symmetric") if any(p[1] for p in pad) else tile


def block_origins(shape: Sequence[int], block: Sequence[int]) -> list[tuple[int, ...]]:
    """Origins of the blocks of ``block`` shape covering ``shape``, in raster (flat) order."""
    return list(itertools.product(*[range(0, s, b) for s, b in zip(shape, block)]))


def block_shape(shape: Sequence[int], block: Sequence[int], layout: Layout) -> tuple[int, ...]:
    """``block`` with the channel axis (if any) widened to all channels."""
    block = [int(b) for b in block]
    if layout.channel is not None:
        block[layout.channel] = int(shape[layout.channel])
    return tuple(block)


def tile_reconstruct(
    source,
    targets: Sequence,
    predict: Predict,
    axes: str,
    ndim: int,
    tile: Sequence[int],
    overlap: Sequence[int],
    block: Sequence[int] | None = None,
    batch_size: int = 4,
    done: Iterable[int] = (),
    on_block: Callable[[int], None] | None = None,
    cache_bytes: int = 256 * 2**20,
    progress: bool = True,
    blocks: Iterable[int] | None = None,
    margin: Sequence[int] | None = None,
) -> TilingStats:
    """Blend overlapping tile predictions of ``source`` into ``targets``, block by block.

    Parameters
    ----------
    source : array-like in storage order ``axes`` (a ``zarr.Array`` or numpy array), raw units.
    targets : writable arrays of the same shape (one per output of ``predict``); values are
        cast to each target's dtype (rounded and clipped for integers).
    predict : maps raw tiles ``(B, C, *tile)`` float32 to a list of ``(B, C, *tile)`` arrays.
    axes, ndim : storage axes and the model's spatial dimensionality (see :class:`Layout`).
    tile, overlap : per spatial axis, in voxels; axes shorter than the tile are padded.
    block : block shape in storage order; defaults to the first target's chunks. Blocks are
        the unit of writing, of progress and of resuming.
    batch_size : tiles per ``predict`` call.
    done : flat indices of blocks already written (skipped, not recomputed).
    on_block : called with each block's flat index after it is written (from the writer
        thread; a block is reported only once its values are stored).
    cache_bytes : bound on the tile predictions kept for later blocks.
    progress : show a tqdm bar over blocks.
    blocks : flat indices of the blocks to do (default: all); the others are left untouched.
    margin : per spatial axis, voxels at a tile's inner edges that get no weight (the model's
        receptive-field radius; see :mod:`cellvae.inference.windows`). Default 0.
    """
    from tqdm.auto import tqdm

    layout = Layout.of(axes, ndim)
    shape = tuple(int(s) for s in source.shape)
    tile = tuple(int(t) for t in tile)
    margin = margin or (0,) * ndim
    tilings = [
        axis_tiling(shape[p], t, o, m) for p, t, o, m in zip(layout.spatial, tile, overlap, margin)
    ]
    block = block_shape(shape, block if block is not None else targets[0].chunks, layout)
    origins = block_origins(shape, block)
    counts = [len(range(0, s, b)) for s, b in zip(shape, block)]
    share = range(len(origins)) if blocks is None else sorted(set(blocks))
    done = set(done)
    todo = [flat for flat in share if flat not in done]
    stats = TilingStats(blocks_skipped=len(share) - len(todo))
    cache = _TileCache(cache_bytes)
    bar = tqdm(
        total=len(share),
        initial=stats.blocks_skipped,
        desc="reconstruct",
        unit="block",
        disable=not progress,
    )
    regions = {
        f: [slice(o, min(o + b, s)) for o, b, s in zip(origins[f], block, shape)] for f in todo
    }
    stream = _TileStream(layout, tilings, tile, predict, batch_size, cache, stats)

    def read(flat: int) -> _Raw:
        return _read_block(source, regions[flat], layout, tilings)

    def write(flat: int, out: list[np.ndarray]) -> None:
        region = tuple(regions[flat])
        for target, values in zip(targets, out):
            target[region] = _cast(layout.from_canonical(values), target.dtype)
        stats.blocks_written += 1
        stats.written.append(flat)
        if on_block is not None:
            on_block(flat)
        bar.update()

    with ThreadPoolExecutor(1, "reader") as reader, ThreadPoolExecutor(1, "writer") as writer:
        writing: Future | None = None
        nxt = reader.submit(read, todo[0]) if todo else None

        def hand_over(finished: list[tuple[int, list[np.ndarray]]]) -> None:
            nonlocal writing
            for flat, out in finished:
                cache.expire(flat)
                if writing is not None:
                    writing.result()  # at most one block waits to be written
                writing = writer.submit(write, flat, out)

        try:
            for i, flat in enumerate(todo):
                raw = nxt.result()
                nxt = reader.submit(read, todo[i + 1]) if i + 1 < len(todo) else None
                last = functools.partial(
                    _last_block,
                    region=regions[flat],
                    block=block,
                    counts=counts,
                    current=flat,
                    layout=layout,
                )
                stream.add(flat, regions[flat], raw, last)
                hand_over(stream.run(flush=False))
            hand_over(stream.run(flush=True))
            if writing is not None:
                writing.result()
        finally:
            if nxt is not None:
                nxt.cancel()
            # blocks already handed to the writer are finished (and recorded) before leaving
            writer.shutdown(wait=True)
            bar.close()
    return stats


def _last_block(
    ends: tuple[int, ...],
    region: list[slice],
    layout: Layout,
    block: tuple[int, ...],
    counts: list[int],
    current: int,
) -> int:
    """Flat index of the last block (raster order) that needs a tile ending at ``ends``."""
    index = [r.start // b for r, b in zip(region, block)]
    for pos, end in zip(layout.spatial, ends):
        index[pos] = (end - 1) // block[pos]
    return max(int(np.ravel_multi_index(index, counts)), current)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast blended float values to ``dtype``, rounding and clipping for integers."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


@dataclass
class _Raw:
    """The input a block's touching tiles need: ``(*loop, C, *spatial)`` from ``lo`` on."""

    data: np.ndarray
    lo: list[int]


def _read_block(source, region: list[slice], layout: Layout, tilings: list[AxisTiling]) -> _Raw:
    """Read the input under every tile touching ``region`` (one read, canonical order)."""
    sregion = [region[p] for p in layout.spatial]
    lregion = [region[p] for p in layout.loop]
    touching = [t.touching(r.start, r.stop) for t, r in zip(tilings, sregion)]
    lo = [int(t.starts[k[0]]) for t, k in zip(tilings, touching)]
    hi = [int(t.ends[k[-1]]) for t, k in zip(tilings, touching)]
    data = layout.to_canonical(
        np.asarray(source[layout.index(lregion, [slice(a, b) for a, b in zip(lo, hi)])])
    )
    return _Raw(data, lo)


class _TileStream:
    """Tiles flow through the model in full batches that may span blocks.

    Blocks are added in order; each adds the tiles it needs that are neither predicted nor
    cached to a queue. Whenever the queue holds a batch, the batch is predicted and weighted;
    a block is blended as soon as all its tiles are ready (blocks finish in the order they
    were added). Every model call gets exactly ``batch_size`` tiles (the very last one is
    padded by repeating a tile), so no batch is wasted on a block's last few tiles and a
    tile's prediction never depends on how many tiles shared its call.
    """

    def __init__(self, layout, tilings, tile, predict, batch_size, cache, stats) -> None:
        self.layout, self.tilings, self.tile = layout, tilings, tile
        self.predict, self.batch_size, self.cache, self.stats = predict, batch_size, cache, stats
        self.queue: list[tuple[tuple, np.ndarray, Callable]] = []
        self.queued: set[tuple] = set()
        self.ready: dict[tuple, list[np.ndarray]] = {}
        self.need: dict[tuple, int] = {}
        self.pending: list[tuple[int, list[slice], list[tuple], Callable]] = []

    def add(self, flat: int, region: list[slice], raw: _Raw, last_block: Callable) -> None:
        """Queue the tiles block ``flat`` needs; ``raw`` holds the input under them."""
        sregion = [region[p] for p in self.layout.spatial]
        lregion = [region[p] for p in self.layout.loop]
        touching = [t.touching(r.start, r.stop) for t, r in zip(self.tilings, sregion)]
        loops = itertools.product(*[range(r.start, r.stop) for r in lregion])
        keys = [(lp, ks) for lp in loops for ks in itertools.product(*touching)]
        for key in keys:
            self.need[key] = self.need.get(key, 0) + 1
            if key in self.ready or key in self.queued:
                continue
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                self.ready[key] = hit
                continue
            lp, ks = key
            rel = tuple(p - r.start for p, r in zip(lp, lregion))
            sl = tuple(
                slice(int(t.starts[k]) - a, int(t.ends[k]) - a)
                for t, k, a in zip(self.tilings, ks, raw.lo)
            )
            self.queue.append((key, _pad_to(raw.data[(*rel, slice(None), *sl)], self.tile)))
            self.queued.add(key)
        self.pending.append((flat, region, keys, last_block))

    def run(self, flush: bool) -> list[tuple[int, list[np.ndarray]]]:
        """Predict the full batches (all with ``flush``); return the blocks now blended."""
        while len(self.queue) >= self.batch_size or (flush and self.queue):
            batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
            self._predict(batch)
        finished = []
        while self.pending and all(k in self.ready for k in self.pending[0][2]):
            flat, region, keys, last_block = self.pending.pop(0)
            sregion = [region[p] for p in self.layout.spatial]
            lregion = [region[p] for p in self.layout.loop]
            preds = {k: self.ready[k] for k in keys}
            finished.append((flat, _accumulate(preds, sregion, lregion, self.tilings)))
            for key in keys:
                self.need[key] -= 1
                if not self.need[key]:
                    del self.need[key]
                    tp = self.ready.pop(key)
                    ends = tuple(int(t.ends[k]) for t, k in zip(self.tilings, key[1]))
                    if last_block(ends) > flat:
                        self.cache.put(key, last_block(ends), tp)
        return finished

    def _predict(self, batch: list[tuple[tuple, np.ndarray]]) -> None:
        tiles = [t for _, t in batch]
        tiles += tiles[-1:] * (self.batch_size - len(tiles))
        outs = self.predict(np.stack(tiles).astype(np.float32, copy=False))
        self.stats.tiles_predicted += len(batch)
        self.stats.voxels_predicted += len(batch) * int(np.prod(self.tile))
        keys = [key for key, _ in batch]
        weights = _batch_windows(self.tilings, [ks for _, ks in keys], self.tile)[: len(batch)]
        weighted = [np.asarray(o[: len(batch)], np.float32) * weights for o in outs]
        for j, key in enumerate(keys):
            valid = tuple(
                slice(0, int(t.ends[k] - t.starts[k])) for t, k in zip(self.tilings, key[1])
            )
            # a copy, never a view: a view would keep the whole batch's output alive
            # while the cache counts only this tile's bytes against its bound
            self.ready[key] = [np.array(w[j][(slice(None), *valid)]) for w in weighted]
            self.queued.discard(key)


def _batch_windows(
    tilings: list[AxisTiling], keys: list[tuple[int, ...]], tile: tuple[int, ...]
) -> np.ndarray:
    """Blending weights of a batch of tiles, ``(B, 1, *tile)`` float32 (zero where padded)."""
    n = len(keys)
    out = np.ones((n, 1, *tile), np.float32)
    for axis, (t, size) in enumerate(zip(tilings, tile)):
        w = np.zeros((n, size), np.float32)
        for j, ks in enumerate(keys):
            win = t.windows[ks[axis]]
            w[j, : len(win)] = win
        view = [n, *[1] * (len(tile) + 1)]
        view[axis + 2] = size
        out *= w.reshape(view)
    return out


def _accumulate(
    preds: dict[tuple, list[np.ndarray]],
    sregion: list[slice],
    lregion: list[slice],
    tilings: list[AxisTiling],
) -> list[np.ndarray]:
    """Sum of the weighted tile predictions over the block, divided by the summed weight.

    Tiles are added in sorted key order, so every voxel's sum is formed in the same order
    whichever block computes it and whichever tiles came from the cache (bit-identical
    results across blocks, parts and reruns).
    """
    first = next(iter(preds.values()))
    channels = first[0].shape[0]
    bshape = [r.stop - r.start for r in sregion]
    lshape = [r.stop - r.start for r in lregion]
    acc = [np.zeros((*lshape, channels, *bshape), np.float32) for _ in first]
    for (lp, ks), tp in sorted(preds.items(), key=lambda item: item[0]):
        rel = tuple(p - r.start for p, r in zip(lp, lregion))
        dst, src = [], []
        for t, k, r in zip(tilings, ks, sregion):
            a, b = max(int(t.starts[k]), r.start), min(int(t.ends[k]), r.stop)
            dst.append(slice(a - r.start, b - r.start))
            src.append(slice(a - int(t.starts[k]), b - int(t.starts[k])))
        for out, p in zip(acc, tp):
            out[(*rel, slice(None), *dst)] += p[(slice(None), *src)]
    total = outer([t.total[r] for t, r in zip(tilings, sregion)]).astype(np.float32)
    for out in acc:
        out /= total
    return acc
