"""Bytes an epoch of training patches fetches from an OME-Zarr served over HTTP, per chunking.

Writes a 4096² uint8 image (Poisson counts over blurred structure) with the default chunks
(256²) and with ``--chunks 16 16`` (16² chunks in 64² shards), serves each folder with the
byte-counting server of the tests (127.0.0.1 only) and iterates the training loader of
``CellDataModule`` (random sampler, 64² patches, 100 per epoch) for several seeds. Prints
the bytes served as a share of the image's pixels and of its stored level 0, mean ± sd over
seeds, and the process CPU seconds of writing each layout and of reading a local patch.

    python benchmarks/bench_remote.py --seeds 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDE, PATCH, PATCHES = 4096, 64, 100


def _image() -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    field = np.kron(gaussian_filter(rng.random((SIDE // 8, SIDE // 8)), 2), np.ones((8, 8)))
    counts = rng.poisson(10 + 150 * (field > np.quantile(field, 0.7)))
    return counts.clip(0, 255).astype(np.uint8)


def _write(folder: Path, data: np.ndarray, chunks) -> tuple[Path, float]:
    from cellvae.io.omezarr import write_image
    from cellvae.io.stats import intensity_stats

    path = folder / f"img{chunks[0]}.ome.zarr"
    start = time.process_time()
    write_image(path, data, "yx", stats=intensity_stats(data, "yx"), chunks=chunks, n_levels=1)
    return path, time.process_time() - start


def _epoch_bytes(server, url: str, seed: int) -> int:
    from cellvae.data.datamodule import CellDataModule

    dm = CellDataModule(
        [url],
        [PATCH, PATCH],
        sampler="random",
        batch_size=10,
        patches_per_epoch=PATCHES,
        val_fraction=0.0,
        seed=seed,
    )
    dm.setup()
    server.reset()
    for _ in dm.train_dataloader():
        pass
    return server.stats()["bytes"]


def _local_patch_ms(path: Path, n: int = 200) -> float:
    from cellvae.io.omezarr import open_image

    array = open_image(path).array
    origins = np.random.default_rng(1).integers(0, SIDE - PATCH, (n, 2))
    start = time.process_time()
    for y, x in origins:
        array[y : y + PATCH, x : x + PATCH]
    return (time.process_time() - start) / n * 1000


def main() -> None:
    from tests.io.servers import Server, stored_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    data = _image()
    folder = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    try:
        for chunks in ((256, 256), (16, 16)):
            path, write_s = _write(folder, data, chunks)
            server = Server("http", folder)
            try:
                url = f"{server.base}/{path.name}"
                served = np.array([_epoch_bytes(server, url, s) for s in range(args.seeds)])
            finally:
                server.stop()
            level0 = stored_bytes(path / "s0")
            pix, sto = 100 * served / data.nbytes, 100 * served / level0
            print(
                f"chunks {chunks}: {served.mean() / 1e3:.0f} ± {served.std(ddof=1) / 1e3:.0f} kB "
                f"per epoch of {PATCHES} patches = {pix.mean():.2f} ± {pix.std(ddof=1):.2f} % "
                f"of the pixels, {sto.mean():.2f} ± {sto.std(ddof=1):.2f} % of level 0 "
                f"({level0 / 2**20:.1f} MiB stored); write {write_s:.1f} s CPU, local read "
                f"{_local_patch_ms(path):.2f} ms CPU per patch"
            )
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
