"""``CellDataModule``: typed, validated data configuration for Lightning and ``cellvae fit``.

Train and validation come from disjoint regions of every volume: the last ``val_fraction``
of the volume's largest spatial axis is validation (read on the grid, every tile once), and
a gap of one patch separates it from the training region, so no validation patch overlaps or
touches a training patch. Only metadata is read here; pixels are read inside the loaders.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from cellvae.data.dataset import SAMPLERS, PatchDataset, open_volume
from cellvae.data.normalize import MAX_BITS, Quantizer
from cellvae.data.samplers import Box, PatchLayout
from cellvae.errors import CellvaeError, ConfigError, check_choice, check_range
from cellvae.io.remote import is_url


class EpochLoader(DataLoader):
    """A DataLoader that tells its :class:`PatchDataset` the epoch before every pass, and
    can resume mid-epoch.

    Non-persistent workers get a fresh copy of the dataset each epoch; setting the epoch in
    the parent first makes every epoch draw new (and reproducible) random patches. The loader
    is *stateful* for Lightning (``state_dict`` / ``load_state_dict``): a checkpoint records
    the epoch and the batches consumed in it (``progress()``, the trainer's count), and a run
    resumed from it continues the epoch with the next batch the interrupted run would have
    drawn, instead of replaying the epoch from its first patch.
    """

    def __init__(self, dataset: PatchDataset, progress=None, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.passes = 0
        self.progress = progress  # () -> batches consumed in the current epoch
        self._start = 0

    def __iter__(self):
        self.dataset.set_epoch(self.passes)
        self.dataset.set_start(self._start)
        self.passes += 1
        self._start = 0
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        """The epoch of the current pass and the batches of it already consumed."""
        done = int(self.progress()) if self.progress is not None else 0
        return {"epoch": max(self.passes - 1, 0), "batches": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next pass continue where ``state`` left off."""
        epoch, done = int(state.get("epoch", 0)), int(state.get("batches", 0))
        try:
            whole = done >= len(self)
        except TypeError:  # an endless stream: an epoch never ends
            whole = False
        self.passes, self._start = (epoch + 1, 0) if whole else (epoch, done)


def split_regions(layout: PatchLayout, val_fraction: float, path: str) -> tuple[Box, Box | None]:
    """Train and validation boxes of one volume along its largest spatial axis.

    Validation is the last ``max(window, ceil(n * val_fraction))`` voxels; a gap of one window
    separates it from training. ``val_fraction == 0`` keeps the whole volume for training.
    """
    if val_fraction == 0:
        return layout.region, None
    extents = [b - a for a, b in layout.region]
    axis = max(range(len(extents)), key=lambda i: extents[i])
    start, stop = layout.region[axis]
    window = layout.window[axis]
    n_val = max(window, math.ceil(extents[axis] * val_fraction))
    train_stop = stop - n_val - window
    if train_stop - start < window:
        name = layout.spatial_axes[axis]
        raise ConfigError(
            f"val_fraction: {path} is too small along {name} ({extents[axis]}) for a training "
            f"and a validation region of patch size {window} with a one-patch gap"
        )
    train = list(layout.region)
    val = list(layout.region)
    train[axis] = (start, train_stop)
    val[axis] = (stop - n_val, stop)
    return tuple(train), tuple(val)


class CellDataModule(L.LightningDataModule):
    """Patches of OME-Zarr volumes for training (random) and validation (grid).

    Parameters
    ----------
    paths
        OME-Zarr images written by ``cellvae ingest`` (they carry intensity statistics):
        local paths or ``https://`` / ``s3://`` URLs (streamed, see :mod:`cellvae.io.remote`).
    patch_size
        ``[Y, X]`` for ``ndim=2`` or ``[Z, Y, X]`` for ``ndim=3``, in voxels.
    ndim
        2 (2D patches, also from 3D data) or 3.
    sampler
        Training sampler: ``foreground`` (prefers patches with cells), ``random`` or ``grid``.
    batch_size, num_workers
        DataLoader settings; ``num_workers`` processes read patches in parallel.
    patches_per_epoch
        Training patches per epoch over all ranks (random samplers).
    val_fraction
        Share of each volume's largest spatial axis kept for validation, in [0, 0.5].
    low_percentile, high_percentile
        Stored percentiles mapped to the first and last intensity level.
    bits
        Bit depth of the level grid, or ``None`` to take it from the data: enough levels for
        every raw integer value in the percentile range (at most the data's bit depth; the
        largest over all images and channels), see :func:`cellvae.data.normalize.range_bits`.
    seed
        Seed of the training patch stream.
    level, channels, axes
        Pyramid level to read, channel subset (``None``: all), axes of plain Zarr arrays.
    multiprocessing_context
        DataLoader worker start method (``None``: the platform default, ``fork`` on Linux,
        which is safe with zarr >= 3.1; ``spawn`` avoids fork altogether).
    """

    def __init__(
        self,
        paths: list[str],
        patch_size: list[int],
        ndim: int = 2,
        sampler: str = "foreground",
        batch_size: int = 16,
        num_workers: int = 0,
        patches_per_epoch: int = 2048,
        val_fraction: float = 0.1,
        low_percentile: float = 0.1,
        high_percentile: float = 99.9,
        bits: int | None = 8,
        seed: int = 0,
        level: int = 0,
        channels: list[int] | None = None,
        axes: str | None = None,
        multiprocessing_context: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_choice("ndim", ndim, (2, 3))
        check_choice("sampler", sampler, SAMPLERS)
        check_choice(
            "multiprocessing_context",
            multiprocessing_context,
            (None, "fork", "spawn", "forkserver"),
        )
        if not paths:
            raise ConfigError("paths: at least one image is required")
        for path in paths:
            if not is_url(path) and not os.path.exists(path):
                raise ConfigError(
                    f"paths: {path} does not exist; make it with 'cellvae ingest IMAGE -o {path}' "
                    f"or, for a bundled sample, 'cellvae ingest --sample NAME -o {path}'"
                )
        if len(patch_size) != ndim or any(int(p) < 1 for p in patch_size):
            raise ConfigError(
                f"patch_size: {list(patch_size)} must be {ndim} positive sizes (ndim={ndim})"
            )
        check_range("batch_size", batch_size, 1)
        check_range("num_workers", num_workers, 0)
        check_range("patches_per_epoch", patches_per_epoch, 1)
        check_range("val_fraction", val_fraction, 0.0, 0.5)
        check_range("low_percentile", low_percentile, 0.0, 100.0)
        check_range("high_percentile", high_percentile, low_percentile, 100.0)
        if bits is not None:
            check_range("bits", bits, 1, MAX_BITS)
        self.paths = [str(p) for p in paths]
        self.patch_size = [int(p) for p in patch_size]
        self.ndim = ndim
        self.sampler = sampler
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.patches_per_epoch = patches_per_epoch
        self.val_fraction = val_fraction
        self.seed = seed
        self.multiprocessing_context = multiprocessing_context
        self._common = {
            "patch_size": self.patch_size,
            "ndim": ndim,
            "bits": bits,
            "low_percentile": low_percentile,
            "high_percentile": high_percentile,
            "level": level,
            "channels": channels,
            "axes": axes,
        }
        self.train_regions, self.val_regions = self._split()
        if bits is None:
            self._common["bits"] = self._data_bits()
        self.train_set = PatchDataset(
            self.paths,
            sampler=sampler,
            seed=seed,
            patches_per_epoch=patches_per_epoch,
            regions=self.train_regions,
            **self._common,
        )
        val = [(p, r) for p, r in zip(self.paths, self.val_regions) if r is not None]
        self.val_set = (
            PatchDataset(
                [p for p, _ in val],
                sampler="grid",
                regions=[r for _, r in val],
                **self._common,
            )
            if val
            else None
        )
        self._check_metadata()

    def _check_metadata(self) -> None:
        """Fail now, not in a worker: channel counts and bit depths must agree."""
        for ds in (self.train_set, self.val_set):
            if ds is not None:
                _ = ds.in_channels, ds.resolved_bits

    def _split(self) -> tuple[list[Box], list[Box | None]]:
        """Train/validation regions per volume, from metadata only."""
        train, val = [], []
        for path in self.paths:
            image = open_volume(path, level=self._common["level"], axes=self._common["axes"])
            if self.ndim == 3 and "z" not in image.axes:
                raise ConfigError(
                    f"ndim: 3D patches need 3D data, but {path} has axes {image.axes!r}; "
                    "use ndim: 2"
                )
            try:
                layout = PatchLayout.build(
                    path, image.axes, image.shape, self.patch_size, self.ndim
                )
            except ConfigError:
                raise
            except CellvaeError as err:  # the image is smaller than the patch
                raise ConfigError(f"patch_size: {err}") from None
            t, v = split_regions(layout, self.val_fraction, path)
            train.append(t)
            val.append(v)
        return train, val

    def _data_bits(self) -> int | None:
        """``bits: null`` resolved once for all images and channels (metadata only)."""
        found = []
        for path in self.paths:
            image = open_volume(path, level=self._common["level"], axes=self._common["axes"])
            if image.stats is None:
                return None  # the dataset reports the missing statistics
            n = len(image.stats.get("channels", []))
            for c in self._common["channels"] if self._common["channels"] is not None else range(n):
                q = Quantizer.from_stats(
                    image.stats,
                    c,
                    self._common["low_percentile"],
                    self._common["high_percentile"],
                    None,
                )
                found.append(q.bits)
        return max(found) if found else None

    @property
    def in_channels(self) -> int:
        """Channels per patch (from metadata), for the model's ``in_channels``."""
        return self.train_set.in_channels

    @property
    def voxel_size(self) -> list[float]:
        """Voxel size along the patch axes of the first image (storage order, its units).

        Linked to the model's ``voxel_size``, from which ``downsample: auto`` chooses per-axis
        factors (Y and X only until the voxels are near isotropic).
        """
        image = open_volume(self.paths[0], level=self._common["level"], axes=self._common["axes"])
        names = [a for a in image.axes if a in "zyx"][-self.ndim :]
        return [float(image.voxel_size.get(a, 1.0)) for a in names]

    @property
    def bits(self) -> int:
        """Bit depth of the level grid (from ``bits`` or the stored statistics)."""
        return self.train_set.resolved_bits

    def setup(self, stage: str | None = None) -> None:
        """Tell the datasets their rank, world size, workers and batch size."""
        trainer = self.trainer
        for ds in (self.train_set, self.val_set):
            if ds is None:
                continue
            if trainer is not None:
                ds.rank, ds.world_size = trainer.global_rank, trainer.world_size
            ds.num_workers = max(1, self.num_workers)
            ds.batch_size = self.batch_size
        # equal batch counts on every rank: validation pads with weight-0 tiles (its figures
        # are weighted), grid training repeats blocks from the start (as DistributedSampler)
        if self.val_set is not None:
            self.val_set.pad = "mask"
        if self.train_set.sampler == "grid":
            self.train_set.pad = "wrap"

    def _on_gpu(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _train_progress(self) -> int:
        """Training batches consumed in the current epoch (0 outside a fit)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _loader(self, dataset: PatchDataset, progress=None) -> EpochLoader:
        # Workers persist across epochs (no process start, no store reopening per epoch;
        # each worker's dataset copy counts its own passes, so epochs still draw new
        # patches), and batches land in pinned memory for asynchronous copies to a GPU.
        return EpochLoader(
            dataset,
            progress=progress,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            multiprocessing_context=self.multiprocessing_context if self.num_workers else None,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._on_gpu(),
        )

    def train_dataloader(self) -> EpochLoader:
        """Random (or grid) training patches, ``(B, C, *patch_size)``."""
        return self._loader(self.train_set, self._train_progress)

    def val_dataloader(self) -> EpochLoader | list:
        """Every validation tile once over all ranks; empty when ``val_fraction == 0``."""
        return self._loader(self.val_set) if self.val_set is not None else []
