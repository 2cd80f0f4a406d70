"""Patch streaming benchmark: PatchDataset vs. raw Zarr reads, and peak memory.

Usage::

    python benchmarks/bench_patches.py            # 8 GiB volume (written, then deleted)
    python benchmarks/bench_patches.py --quick    # 256 MiB volume, a few seconds

Prints patches/s of :class:`cellvae.data.dataset.PatchDataset` (64³ chunk-aligned patches,
quantised to float32 tensors) and of plain ``zarr`` reads of the same tiles (the limit), with
0, 1 and 2 DataLoader workers, the ratio (target >= 0.8 single-process), and the peak RSS of
the main process and of the workers while streaming random patches (target < 1 GiB).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from cellvae.data.dataset import PatchDataset
from cellvae.io.omezarr import create_image, finalize_image, open_image

CHUNK = 64


def write_volume(path: Path, shape: tuple[int, int, int]) -> None:
    """A uint16 ``zyx`` volume of uniform random voxels, chunk by chunk.

    Full-range noise does not compress, so the store on disk is as large as the raw volume
    (the issue asks for >= 8 GB on disk, more than this machine's page cache can hide).
    """
    arr = create_image(path, shape, np.uint16, "zyx", chunks=(CHUNK,) * 3, shards=None)
    rng = np.random.default_rng(0)
    nz, ny, nx = (s // CHUNK for s in shape)
    for i in range(nz):
        for j in range(ny):
            for k in range(nx):
                block = rng.integers(0, 2**16, size=(CHUNK,) * 3, dtype=np.uint16)
                arr[tuple(slice(c * CHUNK, (c + 1) * CHUNK) for c in (i, j, k))] = block
    top = 2**16 - 1  # percentiles of the uniform distribution on [0, top]
    pct = {f"{p:g}": p / 100 * top for p in (0.1, 1, 50, 99, 99.9)}
    channel = {"percentiles": pct, "mean": top / 2, "std": top / 12**0.5, "min": 0.0, "max": top}
    stats = {"dtype": "uint16", "bits": 16, "channels": [channel]}
    finalize_image(path.with_name(path.name + ".partial"), path, stats=stats, n_levels=1)


class RawTiles(IterableDataset):
    """The limit: the same tiles read with ``zarr`` and wrapped as tensors, nothing else."""

    def __init__(self, path: str, origins: list[tuple[int, int, int]]) -> None:
        self.path, self.origins = path, origins

    def __iter__(self):
        info = get_worker_info()
        s, n = (info.id, info.num_workers) if info else (0, 1)
        arr = open_image(self.path).array
        for z, y, x in self.origins[s::n]:
            yield torch.from_numpy(arr[z : z + CHUNK, y : y + CHUNK, x : x + CHUNK])


def rate(dataset: IterableDataset, workers: int) -> float:
    """Patches per second through a DataLoader with ``workers`` workers (batch_size=None)."""
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    start, n = time.perf_counter(), 0
    for _ in loader:
        n += 1
    return n / (time.perf_counter() - start)


def peak_rss_mib() -> tuple[float, float]:
    """Peak RSS (MiB) of this process and of its largest finished child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small volume, few patches")
    parser.add_argument("--dir", default=None, help="where to write the volume (a temp dir)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shape = (256, 512, 1024) if args.quick else (1024, 2048, 2048)
    root = Path(tempfile.mkdtemp(prefix="bench_patches_", dir=args.dir))
    path = root / "volume.zarr"
    try:
        start = time.perf_counter()
        write_volume(path, shape)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(
            f"volume {shape} uint16 = {np.prod(shape) * 2 / 2**30:.2f} GiB raw, "
            f"{size / 2**30:.2f} GiB on disk, written in {time.perf_counter() - start:.0f} s"
        )
        # a block of whole chunks, read tile by tile by both the dataset (grid) and raw zarr
        block = tuple(min(8, s // CHUNK) * CHUNK for s in shape)
        region = tuple((0, b) for b in block)
        dataset = PatchDataset(
            [str(path)], (CHUNK,) * 3, ndim=3, sampler="grid", bits=8, regions=[region]
        )
        origins = [origin for _, _, origin in dataset.grid_tiles()]
        raw = RawTiles(str(path), origins)
        rate(raw, 0)  # warm the page cache
        print(f"{'workers':>8} {'raw patch/s':>12} {'dataset patch/s':>16} {'ratio':>6}")
        for workers in (0, 1, 2):
            r_raw = max(rate(raw, workers) for _ in range(2))
            r_ds = max(rate(dataset, workers) for _ in range(2))
            print(f"{workers:>8} {r_raw:>12.1f} {r_ds:>16.1f} {r_ds / r_raw:>6.2f}")
        stream = PatchDataset(
            [str(path)], (CHUNK,) * 3, ndim=3, sampler="random", patches_per_epoch=4 * len(origins)
        )
        for workers in (0, 2):
            r = rate(stream, workers)
            own, child = peak_rss_mib()
            print(
                f"random 64³ stream, {workers} workers: {r:.1f} patch/s, peak RSS main "
                f"{own:.0f} MiB, worker {child:.0f} MiB"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
