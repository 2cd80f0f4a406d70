"""Benchmark of tiled reconstruction: pixels/s on CPU or GPU, overhead, peak memory, seams.

Run ``python benchmarks/bench_reconstruct.py --quick`` (seconds to minutes on a laptop CPU) or
without ``--quick`` for the full sizes (2 GB vs 8 GB images for the memory check; needs ~10 GB
of free disk and a long time on a CPU); ``--arch hierarchical --tile 256`` measures a fully
convolutional model on tiles larger than its training patch; ``--device cuda`` runs the model
on a GPU and reports its busy fraction; ``--sweep`` times batch sizes and tile sides. Prints
one line per figure:

1. pixels/s of ``tile_reconstruct`` (zarr in, zarr out, ``--overlap``) vs. one batched
   forward of the same model over the same number of voxels; overhead = 1 - ratio
   (target <= 15 %). The model-side redundancy (voxels through the model / image voxels) is
   printed too, since it bounds the overhead from below. On a GPU, the busy fraction is the
   time the GPU spent in the model calls (CUDA events) over the wall time of the run.
2. peak RSS of a subprocess that reconstructs a generated image of size S and of 4 S with a
   cheap identity predictor (memory is about blocks, not the model); target: equal within 10 %.
3. seam check: mean |reconstruction - input| within ``overlap`` voxels of an interior tile
   border vs. elsewhere (target border <= 1.05 × interior).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from cellvae.data.normalize import Quantizer
from cellvae.inference.model import Reconstructor
from cellvae.inference.reconstruct import BLOCK_SIDE, CHUNK_SIDE
from cellvae.inference.tiling import tile_reconstruct
from cellvae.inference.windows import tile_starts


def make_model(patch: int, arch: str = "flat"):
    """An untrained, seeded 2D VAE for ``patch``² tiles.

    ``flat`` is tied to its patch size, so its tiles are exactly that size; ``hierarchical``
    is fully convolutional and takes any tile whose sides are multiples of its downsampling,
    so larger tiles (less overlap per voxel) are open to it.
    """
    from cellvae.training.module import VAEModule

    torch.manual_seed(0)
    module = VAEModule(
        arch=arch,
        ndim=2,
        patch_size=patch,
        widths=(8, 16, 32),
        latent_dim=16,
        latent_channels=4,
        likelihood="gaussian" if arch == "flat" else "dlogistic",
    )
    return module.model.eval()


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 image of blurred noise (structure at ~8 px)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.normal(size=shape), 4)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


class TimedPredict:
    """A predictor that sums the device time of its calls (CUDA events on a GPU)."""

    def __init__(self, predict, device: torch.device) -> None:
        self.predict, self.device, self.events = predict, device, []

    def __call__(self, tiles):
        if self.device.type != "cuda":
            return self.predict(tiles)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = self.predict(tiles)
        end.record()
        self.events.append((start, end))
        return out

    def busy_seconds(self) -> float:
        torch.cuda.synchronize()
        return sum(s.elapsed_time(e) for s, e in self.events) / 1000


def throughput(
    side: int,
    patch: int,
    batch: int,
    arch: str = "flat",
    repeats: int = 3,
    overlap: int | None = None,
    device: str = "cpu",
) -> dict:
    """Tiled vs. batched pixels/s on a ``side``² image with ``patch``² tiles."""
    dev = torch.device(device)
    model = make_model(patch, arch).to(dev)
    rec = Reconstructor(model, [Quantizer(0, 255, 8)])
    image = smooth_image((side, side))
    src = zarr.create_array(
        store={}, shape=image.shape, chunks=(CHUNK_SIDE[2],) * 2, dtype=np.uint8
    )
    src[...] = image
    out = zarr.create_array(
        store={}, shape=image.shape, chunks=(CHUNK_SIDE[2],) * 2, dtype=np.float32
    )
    overlap = max(patch // 16, 2) if overlap is None else overlap
    n = image.size // patch**2
    tiles = np.ascontiguousarray(
        image[: (side // patch) * patch, : (side // patch) * patch]
        .reshape(side // patch, patch, side // patch, patch)
        .transpose(0, 2, 1, 3)
        .reshape(-1, 1, patch, patch)[:n],
        np.float32,
    )
    rec(tiles[:batch])  # warm-up
    t_batched, t_tiled, busy = np.inf, np.inf, 0.0
    for _ in range(repeats):  # best of ``repeats``, interleaved: the least disturbed run
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            rec(tiles[i : i + batch])
        t_batched = min(t_batched, time.perf_counter() - t0)
        timed = TimedPredict(rec, dev)
        t0 = time.perf_counter()
        stats = tile_reconstruct(
            src,
            [out],
            timed,
            "yx",
            2,
            (patch, patch),
            (overlap, overlap),
            block=(BLOCK_SIDE[2],) * 2,
            batch_size=batch,
            progress=False,
        )
        wall = time.perf_counter() - t0
        if wall < t_tiled:
            t_tiled = wall
            busy = timed.busy_seconds() / wall if dev.type == "cuda" else float("nan")
    starts = tile_starts(side, patch, overlap)
    return {
        "image": f"{side}x{side}",
        "tile": patch,
        "overlap": overlap,
        "batch": batch,
        "device": device,
        "batched_vox_per_s": image.size / t_batched,
        "tiled_vox_per_s": image.size / t_tiled,
        "overhead": 1 - t_batched / t_tiled,
        "model_redundancy": stats.voxels_predicted / image.size,
        "grid_redundancy": (len(starts) * patch / side) ** 2,
        "gpu_busy": busy,
        "seam": seam_ratio(image, out[...], starts, patch, overlap),
    }


def seam_ratio(image, recon, starts, tile, overlap) -> float:
    """Mean abs error within ``overlap`` voxels of interior tile borders / elsewhere."""
    border1d = np.zeros(image.shape[0], bool)
    for s in starts[1:]:
        border1d[s : s + overlap] = True  # where tile k starts inside tile k-1
        border1d[max(s - 1, 0)] = True
    for s in starts[:-1]:
        border1d[s + tile - overlap : s + tile] = True
    border = border1d[:, None] | border1d[None, :]
    err = np.abs(recon - image.astype(np.float32))
    return float(err[border].mean() / err[~border].mean())


def _child(path: str, out: str) -> None:
    """Reconstruct ``path`` with an identity predictor; print peak RSS in MiB."""
    import resource

    src = zarr.open_array(path, mode="r")
    dst = zarr.create_array(out, shape=src.shape, chunks=src.chunks, dtype=np.uint8, overwrite=True)
    side = 256
    tile_reconstruct(
        src,
        [dst],
        lambda t: [t],
        "yx",
        2,
        (side, side),
        (side // 16, side // 16),
        block=(BLOCK_SIDE[2],) * 2,
        batch_size=8,
        progress=False,
    )
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss(nbytes: int, workdir: Path) -> float:
    """Peak RSS (MiB) of reconstructing a generated uint8 2D image of ``nbytes``."""
    side = int(np.sqrt(nbytes))
    path = workdir / f"img{side}.zarr"
    arr = zarr.create_array(
        str(path), shape=(side, side), chunks=(CHUNK_SIDE[2],) * 2, dtype=np.uint8, overwrite=True
    )
    rows = CHUNK_SIDE[2]
    rng = np.random.default_rng(0)
    for r in range(0, side, rows):
        arr[r : r + rows] = rng.integers(0, 255, (min(rows, side - r), side), dtype=np.uint8)
    res = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(workdir / "out.zarr")],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def sweep(side: int, arch: str, device: str, tiles=(64, 128, 256), batches=(1, 2, 4, 8, 16)):
    """Tiled pixels/s for each tile side and batch size (overlap a quarter of the tile)."""
    for patch in tiles if arch == "hierarchical" else tiles[:1]:
        for batch in batches:
            r = throughput(side, patch, batch, arch, 1, patch // 4, device)
            print(f"sweep tile {patch} batch {batch}: tiled {r['tiled_vox_per_s']:.3g} px/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes on a CPU)")
    parser.add_argument("--arch", choices=("flat", "hierarchical"), default="flat")
    parser.add_argument(
        "--tile", type=int, default=64, help="tile side (a flat model is built for it)"
    )
    parser.add_argument("--overlap", type=int, help="tile overlap (default: 1/16 of the tile)")
    parser.add_argument("--batch", type=int, default=16, help="tiles per model call")
    parser.add_argument("--side", type=int, help="image side (default 2048 quick, else 8192)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sweep", action="store_true", help="time tile sides and batch sizes")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS check")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU")
    side, rss_bytes = (2048, 64 * 2**20) if args.quick else (8192, 2 * 2**30)
    side = args.side or side
    if args.sweep:
        sweep(side, args.arch, args.device)
        return
    result = throughput(side, args.tile, args.batch, args.arch, 3, args.overlap, args.device)
    busy = "" if args.device == "cpu" else f", GPU busy {100 * result['gpu_busy']:.0f} %"
    print(
        f"throughput {args.arch} on {args.device} {result['image']} tile {result['tile']} "
        f"overlap {result['overlap']} batch {result['batch']}: "
        f"batched {result['batched_vox_per_s']:.3g} px/s, tiled "
        f"{result['tiled_vox_per_s']:.3g} px/s{busy}, overhead "
        f"{100 * result['overhead']:.1f} % (target <= 15 %); model voxels / image voxels "
        f"{result['model_redundancy']:.3f} (tile grid alone {result['grid_redundancy']:.3f})"
    )
    # what the tiler itself adds (reads, blending, writes) once the overlap's extra voxels,
    # fixed by tile, overlap and image side, are paid for
    beyond = (1 / (1 - result["overhead"])) / result["model_redundancy"] - 1
    print(f"pipeline overhead beyond the overlap's extra voxels: {100 * beyond:.1f} %")
    print(f"seam: border error / interior error = {result['seam']:.3f} (target <= 1.05)")
    if args.no_memory:
        return
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        small = peak_rss(rss_bytes, Path(tmp))
        large = peak_rss(4 * rss_bytes, Path(tmp))
    print(
        f"peak RSS: {rss_bytes / 2**20:.0f} MiB image {small:.0f} MiB, "
        f"{4 * rss_bytes / 2**20:.0f} MiB image {large:.0f} MiB, ratio {large / small:.3f} "
        f"(target <= 1.10)"
    )


if __name__ == "__main__":
    main()
