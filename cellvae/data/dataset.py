"""``PatchDataset``: a stream of normalised patches from many OME-Zarr volumes.

Every item is a float32 tensor ``(C, Y, X)`` (``ndim=2``) or ``(C, Z, Y, X)`` (``ndim=3``) on
the level grid of :class:`~cellvae.data.normalize.Quantizer`, one quantizer per volume and
channel built from the stored percentiles.

Sharding. The stream is split over ``S = world_size * num_workers`` shards; shard
``s = rank * num_workers + worker_id``. A rank's stream is a sequence of *rank batches*
``i = 0, 1, ...`` of ``batch_size`` patches; worker ``w`` makes batches ``w, w + W, ...`` (the
order in which the DataLoader takes them). The grid is cut into blocks of ``batch_size`` tiles
and block ``b`` goes to shard ``b % S``: every tile is read exactly once over all ranks and
workers. Random modes seed rank batch ``i`` with ``(seed, epoch, rank, i)``, so a seed
reproduces the stream, no two ranks repeat each other, and the stream can start anywhere.

Equal counts. With ``pad`` set, every rank yields the same number of batches (DDP ranks must
take part in the same collectives): a rank short of grid blocks gets padding batches, either
copies of real tiles marked with weight 0 (``pad="mask"``: items are ``{"image", "weight"}``
dicts; validation weights its figures by them) or blocks from the start of the grid again
(``pad="wrap"``, as ``DistributedSampler`` pads training data).

Epochs and resuming. ``epoch`` is the number of times this object has been iterated, or what
:meth:`PatchDataset.set_epoch` says; :class:`~cellvae.data.datamodule.EpochLoader` sets it
before each pass so non-persistent workers (which get a fresh copy) see the right epoch.
:meth:`PatchDataset.set_start` makes the next pass begin at rank batch ``k`` (a resumed run
continues its epoch patch for patch instead of replaying it).

Stores are opened lazily, once per process (keyed by pid): the parent only reads metadata,
and a forked or spawned worker opens its own Zarr arrays.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from cellvae.data.normalize import Quantizer
from cellvae.data.samplers import (
    Box,
    Origin,
    PatchLayout,
    foreground_fraction,
    foreground_threshold,
    grid_origins,
    rejection_sample,
    uniform_origin,
)
from cellvae.errors import CellvaeError, ConfigError, check_choice, check_range
from cellvae.io.remote import is_url

SAMPLERS = ("random", "foreground", "grid")


def open_volume(path: str, level: int = 0, axes: str | None = None) -> Any:
    """Open an image lazily through :func:`cellvae.io.omezarr.open_image` (metadata only)."""
    from cellvae.io.omezarr import open_image

    return open_image(path, level=level, axes=axes)


@dataclass
class Volume:
    """One opened volume: its image, patch layout, quantizers and foreground thresholds."""

    path: str
    image: Any
    layout: PatchLayout
    channels: slice | list[int]
    quantizers: list[Quantizer]
    thresholds: list[float]

    @property
    def weight(self) -> int:
        """Number of voxels patches can come from, so big volumes give more patches."""
        return self.layout.n_times * math.prod(b - a for a, b in self.layout.region)


class PatchDataset(IterableDataset):
    """Normalised patches from OME-Zarr volumes, sharded over DataLoader workers and ranks.

    Parameters
    ----------
    paths
        OME-Zarr images (or plain Zarr arrays, with ``axes``): local paths or ``https://`` /
        ``s3://`` URLs, whose chunks are fetched as patches need them.
    patch_size
        ``(Y, X)`` for ``ndim=2``, ``(Z, Y, X)`` for ``ndim=3``.
    ndim
        2 or 3. 2D patches from 3D data take one random z plane.
    sampler
        ``"random"`` (uniform origins), ``"foreground"`` (rejection sampling toward patches
        with at least ``min_foreground`` of their voxels above a stored-percentile threshold,
        best of ``max_tries`` otherwise) or ``"grid"`` (every tile once, finite).
    bits, low_percentile, high_percentile
        Quantizer settings; ``bits=None`` uses the data's own bit depth.
    seed
        Seed of the random streams.
    patches_per_epoch
        Nominal epoch length of the random modes over all ranks and workers (``None``:
        infinite stream).
    regions
        One box per path (``(start, stop)`` per spatial axis) or ``None`` for whole volumes.
    level, channels, axes
        Pyramid level, channel subset (``None``: all) and axes for plain Zarr arrays.

    Attributes ``rank``, ``world_size`` (``None``: from ``torch.distributed``),
    ``num_workers`` and ``batch_size`` are set by the datamodule; they only affect the
    reported length and the block size of the grid split.
    """

    def __init__(
        self,
        paths: Sequence[str],
        patch_size: Sequence[int],
        ndim: int = 2,
        sampler: str = "random",
        bits: int | None = 8,
        low_percentile: float = 0.1,
        high_percentile: float = 99.9,
        seed: int = 0,
        patches_per_epoch: int | None = 1000,
        regions: Sequence[Box | None] | None = None,
        level: int = 0,
        channels: Sequence[int] | None = None,
        axes: str | None = None,
        min_foreground: float = 0.05,
        max_tries: int = 10,
    ) -> None:
        super().__init__()
        check_choice("sampler", sampler, SAMPLERS)
        check_choice("ndim", ndim, (2, 3))
        if len(patch_size) != ndim:
            raise ConfigError(f"patch_size: {list(patch_size)} must have {ndim} entries (ndim)")
        if any(int(p) < 1 for p in patch_size):
            raise ConfigError(f"patch_size: {list(patch_size)} must be positive")
        if not paths:
            raise ConfigError("paths: at least one image is required")
        if regions is not None and len(regions) != len(paths):
            raise ConfigError(f"regions: {len(regions)} given for {len(paths)} paths")
        if patches_per_epoch is not None:
            check_range("patches_per_epoch", patches_per_epoch, 1)
        check_range("min_foreground", min_foreground, 0.0, 1.0)
        self.paths = [str(p) for p in paths]
        self.patch_size = tuple(int(p) for p in patch_size)
        self.ndim = ndim
        self.sampler = sampler
        self.bits = bits
        self.low_percentile = low_percentile
        self.high_percentile = high_percentile
        self.seed = seed
        self.patches_per_epoch = patches_per_epoch
        self.regions = list(regions) if regions is not None else [None] * len(self.paths)
        self.level = level
        self.channels = list(channels) if channels is not None else None
        self.axes = axes
        self.min_foreground = min_foreground
        self.max_tries = max_tries
        self.rank: int | None = None
        self.world_size: int | None = None
        self.num_workers = 1
        self.batch_size = 1
        self.pad: str | None = None
        self._epoch = 0
        self._start = 0
        self._opened: tuple[int, list[Volume]] | None = None

    # -- opening --------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open stores: each worker opens its own."""
        state = self.__dict__.copy()
        state["_opened"] = None
        return state

    def volumes(self) -> list[Volume]:
        """The volumes opened in this process (metadata only until a patch is read)."""
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), [self._open(i) for i in range(len(self.paths))])
        return self._opened[1]

    def _open(self, i: int) -> Volume:
        path = self.paths[i]
        if not is_url(path) and not os.path.exists(path):
            raise CellvaeError(f"{path}: no such file or directory")
        image = open_volume(path, level=self.level, axes=self.axes)
        layout = PatchLayout.build(
            path, image.axes, image.shape, self.patch_size, self.ndim, self.regions[i]
        )
        n_channels = image.shape[image.axes.index("c")] if "c" in image.axes else 1
        chosen = self.channels if self.channels is not None else list(range(n_channels))
        if any(not 0 <= c < n_channels for c in chosen):
            raise ConfigError(f"channels: {chosen} out of range for {path} ({n_channels} channels)")
        if image.stats is None:
            raise CellvaeError(
                f"{path}: no intensity statistics stored; convert it with `cellvae ingest`"
            )
        quantizers = [
            Quantizer.from_stats(
                image.stats, c, self.low_percentile, self.high_percentile, self.bits
            )
            for c in chosen
        ]
        thresholds = [foreground_threshold(image.stats["channels"][c]) for c in chosen]
        index = slice(None) if self.channels is None else chosen
        return Volume(path, image, layout, index, quantizers, thresholds)

    @property
    def in_channels(self) -> int:
        """Channels per patch (the same for every volume, else :class:`ConfigError`)."""
        counts = {len(v.quantizers) for v in self.volumes()}
        if len(counts) != 1:
            raise ConfigError(f"paths: the images have different channel counts {sorted(counts)}")
        return counts.pop()

    @property
    def resolved_bits(self) -> int:
        """Bit depth of the level grid (``bits`` or the data's, the same for all volumes)."""
        found = {q.bits for v in self.volumes() for q in v.quantizers}
        if len(found) != 1:
            raise ConfigError(f"bits: the images have different bit depths {sorted(found)}")
        return found.pop()

    # -- reading --------------------------------------------------------------------------

    def read_patch(self, volume: Volume, t: int, origin: Origin) -> np.ndarray:
        """Raw patch ``(C, *patch_size)`` at time ``t`` and spatial ``origin``."""
        layout = volume.layout
        raw = np.asarray(volume.image.array[layout.index(t, origin, volume.channels)])
        kept = [a for a in layout.axes if a != "t"]
        if "c" in kept:
            raw = np.moveaxis(raw, kept.index("c"), 0)
        return raw.reshape((-1, *self.patch_size))

    def quantize(self, volume: Volume, raw: np.ndarray) -> torch.Tensor:
        """Model inputs ``(C, *patch_size)`` float32 of a raw patch."""
        out = np.empty(raw.shape, dtype=np.float32)
        for c, q in enumerate(volume.quantizers):
            q.quantize(raw[c], out=out[c])
        return torch.from_numpy(out)

    # -- sharding and iteration -----------------------------------------------------------

    def shard(self) -> tuple[int, int]:
        """``(s, S)``: this process's shard index and the number of shards."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self._rank_world()
        return rank * workers + worker, world * workers

    def _rank_world(self) -> tuple[int, int]:
        if self.world_size is not None:
            return self.rank or 0, self.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass (random modes draw new patches each epoch)."""
        self._epoch = epoch

    def set_start(self, batch: int) -> None:
        """Begin the next pass at rank batch ``batch`` (the first ``batch`` were consumed)."""
        self._start = int(batch)

    def grid_tiles(self) -> list[tuple[int, int, Origin]]:
        """Every ``(volume, t, origin)`` tile of the grid, in a fixed order."""
        return [
            (v, t, origin)
            for v, vol in enumerate(self.volumes())
            for t in range(vol.layout.n_times)
            for origin in grid_origins(vol.layout.region, vol.layout.window)
        ]

    def shard_tiles(self, s: int, n_shards: int) -> list[tuple[int, int, Origin]]:
        """Tiles of shard ``s``: blocks of ``batch_size`` tiles dealt round-robin."""
        tiles, b = self.grid_tiles(), self.batch_size
        return [tile for i, tile in enumerate(tiles) if (i // b) % n_shards == s]

    def _per_shard(self, n_shards: int) -> int:
        """Random-mode patches per shard: the epoch share rounded up to whole batches."""
        assert self.patches_per_epoch is not None
        b = self.batch_size
        return math.ceil(self.patches_per_epoch / (n_shards * b)) * b

    def _grid_blocks(self) -> list[list[tuple[int, int, Origin]]]:
        tiles, b = self.grid_tiles(), self.batch_size
        return [tiles[i : i + b] for i in range(0, len(tiles), b)]

    def _block_of(self, i: int, rank: int, workers: int, n_shards: int) -> int:
        """The grid block of rank batch ``i`` (shard ``rank * W + i % W``'s ``i // W``-th)."""
        return (i // workers) * n_shards + rank * workers + i % workers

    def rank_batches(self) -> int | None:
        """Batches this rank yields per epoch (``None``: an endless random stream)."""
        rank, world = self._rank_world()
        workers = max(1, self.num_workers)
        n_shards = world * workers
        if self.sampler == "grid":
            n_blocks = len(self._grid_blocks())
            if self.pad is not None:
                return workers * math.ceil(n_blocks / n_shards)
            return sum(
                1
                for i in range(workers * math.ceil(n_blocks / n_shards))
                if self._block_of(i, rank, workers, n_shards) < n_blocks
            )
        if self.patches_per_epoch is None:
            return None
        return self._per_shard(n_shards) // self.batch_size * workers

    def __len__(self) -> int:
        """Patches this rank yields per epoch (assuming ``num_workers`` workers)."""
        n = self.rank_batches()
        if n is None:
            raise TypeError("an infinite patch stream has no length")
        if self.sampler != "grid":
            return n * self.batch_size
        rank, world = self._rank_world()
        workers = max(1, self.num_workers)
        blocks = self._grid_blocks()
        sizes = []
        for i in range(n):
            block = self._block_of(i, rank, workers, world * workers)
            if block < len(blocks):
                sizes.append(len(blocks[block]))
            elif self.pad == "wrap":
                sizes.append(len(blocks[block % len(blocks)]))
            else:
                sizes.append(self.batch_size)
        return sum(sizes)

    def _my_batches(self) -> Iterator[int]:
        """Rank batches this worker makes this pass, from the start batch on."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start, self._start = self._start, 0  # only the first pass after set_start skips
        n = self.rank_batches()
        i = start + worker
        while n is None or i < n:
            yield i
            i += workers

    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch
        self._epoch += 1
        rank, world = self._rank_world()
        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        volumes = self.volumes()
        batches = self._my_batches()
        if self.sampler == "grid":
            blocks = self._grid_blocks()
            for i in batches:
                block = self._block_of(i, rank, workers, world * workers)
                padding = block >= len(blocks)
                tiles = blocks[block % len(blocks)] if self.pad == "wrap" else None
                if tiles is None:
                    tiles = [blocks[0][0]] * self.batch_size if padding else blocks[block]
                for v, t, origin in tiles:
                    patch = self.quantize(volumes[v], self.read_patch(volumes[v], t, origin))
                    if self.pad == "mask":
                        yield {"image": patch, "weight": 0.0 if padding else 1.0}
                    else:
                        yield patch
            return
        weights = np.array([v.weight for v in volumes], dtype=np.float64)
        weights /= weights.sum()
        for i in batches:
            rng = np.random.default_rng([self.seed, epoch, rank, i])
            for _ in range(self.batch_size):
                volume = volumes[int(rng.choice(len(volumes), p=weights))]
                yield self.quantize(volume, self._random_patch(rng, volume))

    def _random_patch(self, rng: np.random.Generator, volume: Volume) -> np.ndarray:
        """A raw patch from a random time point and origin (foreground-weighted if asked)."""
        layout = volume.layout

        def propose() -> tuple[int, Origin]:
            t = int(rng.integers(layout.n_times))
            return t, uniform_origin(rng, layout.region, layout.window)

        if self.sampler == "random":
            return self.read_patch(volume, *propose())

        def score(where: tuple[int, Origin]) -> tuple[float, np.ndarray]:
            raw = self.read_patch(volume, *where)
            return foreground_fraction(raw, volume.thresholds), raw

        return rejection_sample(propose, score, self.min_foreground, self.max_tries)[1]
