"""Reconstruct a whole OME-Zarr image with a trained VAE: tiled, blended, resumable.

Outputs (OME-Zarr, the input's axes and voxel sizes, raw intensity units):

* ``RECON.zarr``: the reconstruction, float32 (or the input's dtype with ``dtype="input"``,
  rounded and clipped). With ``samples=0`` it decodes the posterior mean; with ``samples=N``
  it is the mean of ``N`` decodings of posterior samples.
* ``RECON_std.zarr`` (only with ``samples >= 1``): the per-voxel standard deviation over the
  samples, float32. Tile blending averages the per-tile standard deviations (a smooth
  approximation near tile borders).

Both are written under ``<name>.partial`` and renamed when complete. Finished blocks are
listed in ``<RECON.zarr.partial>/cellvae_progress.json``; rerunning the same command resumes
and recomputes none of them (a different checkpoint or setting starts afresh).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError, check_choice
from cellvae.inference.layout import Layout
from cellvae.inference.model import Reconstructor, default_patch, load_model, quantizers_for
from cellvae.inference.tiling import TilingStats, tile_reconstruct
from cellvae.io.atomic import check_output, remove_path, temporary_path
from cellvae.io.omezarr import create_image, finalize_image, open_image

PROGRESS_FILE = "cellvae_progress.json"
#: Default overlap as a fraction of the tile side (at least 2 voxels): 1/16 keeps the extra
#: model work of the overlaps near 14 % in 2D while the raised-cosine ramps hide the seams.
OVERLAP_FRACTION = 1 / 16
#: Output chunk side and block side (block = unit of writing and resuming), 2D and 3D.
CHUNK_SIDE = {2: 512, 3: 64}
BLOCK_SIDE = {2: 2048, 3: 256}


@dataclass(frozen=True)
class Settings:
    """Everything that determines the output; a rerun resumes only if these match."""

    ckpt: str
    input: str
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    mode: str
    samples: int
    dtype: str


def std_path(output: str | os.PathLike) -> Path:
    """``RECON.zarr`` → ``RECON_std.zarr``, where the sample standard deviation goes."""
    output = Path(output)
    return output.with_name(f"{output.stem}_std{output.suffix}")


def default_overlap(tile: tuple[int, ...]) -> tuple[int, ...]:
    """``OVERLAP_FRACTION`` of each tile side, at least 2 voxels and at most half the side."""
    return tuple(min(max(int(t * OVERLAP_FRACTION), 2), t // 2) for t in tile)


def check_tile(vae, tile: tuple[int, ...], overlap: tuple[int, ...]) -> None:
    """Refuse tiles the model cannot take and overlaps that do not fit in a tile."""
    sides = _sides(vae.downsampling, vae.ndim)
    down = sides[0] if len(set(sides)) == 1 else list(sides)
    if len(tile) != vae.ndim or len(overlap) != vae.ndim:
        raise CellvaeError(f"--tile/--overlap: give 1 or {vae.ndim} values for a {vae.ndim}D model")
    if any(t < d or t % d for t, d in zip(tile, sides)):
        raise CellvaeError(
            f"--tile: {list(tile)} must be multiples of the model's downsampling {down} "
            f"(at least {down})"
        )
    fixed = getattr(vae, "patch_shape", None)
    if fixed is not None and tuple(tile) != tuple(fixed):
        raise CellvaeError(f"--tile: {list(tile)} differs from the model's patch {list(fixed)}")
    if any(not 0 <= o <= t // 2 for o, t in zip(overlap, tile)):
        raise CellvaeError(f"--overlap: {list(overlap)} must be in [0, tile/2] for {list(tile)}")


def _sides(value: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    value = (value,) if isinstance(value, int) else tuple(value)
    return value * ndim if len(value) == 1 else value


def _plain(settings: Settings) -> dict:
    """Settings as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(asdict(settings)))


def _load_done(tmp: Path, settings: Settings) -> list[int]:
    try:
        record = json.loads((tmp / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return list(record.get("done", [])) if record.get("settings") == _plain(settings) else []


def _save_done(tmp: Path, settings: Settings, done: list[int]) -> None:
    part = tmp / (PROGRESS_FILE + ".tmp")
    part.write_text(json.dumps({"settings": _plain(settings), "done": done}))
    os.replace(part, tmp / PROGRESS_FILE)


def reconstruct_image(
    ckpt: str | os.PathLike,
    input: str | os.PathLike,
    output: str | os.PathLike,
    tile: int | tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    samples: int = 0,
    mode: str = "mean",
    batch_size: int = 4,
    dtype: str = "float32",
    overwrite: bool = False,
    block: int | None = None,
    cache_mb: int = 256,
    progress: bool = True,
) -> TilingStats:
    """Reconstruct ``input`` (OME-Zarr) with the VAE in ``ckpt`` into ``output``.

    ``tile``/``overlap`` are voxels per spatial axis (one value for all, or one per axis);
    they default to the model's patch and 1/16 of it. ``block`` is the side of the blocks
    written at once (default 2048 in 2D, 256 in 3D, whole chunks of 512 / 64).
    """
    check_choice("--mode", mode, ("mean", "mode"))
    check_choice("--dtype", dtype, ("float32", "input"))
    if samples < 0 or batch_size < 1:
        raise CellvaeError("--samples must be >= 0 and --batch-size >= 1")
    outputs = [Path(output)] + ([std_path(output)] if samples else [])
    for path in outputs:
        check_output(path, overwrite)
    vae, hparams = load_model(ckpt)
    image = open_image(input)
    layout = Layout.of(image.axes, vae.ndim, source=str(input))
    channels = layout.channels(image.shape)
    if channels != vae.in_channels:
        raise CellvaeError(
            f"{input}: {channels} channel(s) but the model was trained on {vae.in_channels}"
        )
    tile = _sides(tile, vae.ndim) or default_patch(vae, hparams)
    overlap = _sides(overlap, vae.ndim) or default_overlap(tile)
    check_tile(vae, tile, overlap)
    settings = Settings(
        str(Path(ckpt).resolve()), str(Path(input).resolve()), tile, overlap, mode, samples, dtype
    )
    quantizers = quantizers_for(
        image.stats, channels, int(hparams.get("bits", 8)), lambda c: _subsample(image, layout, c)
    )
    shape = image.shape
    chunks, blocks = [1] * len(shape), [1] * len(shape)
    if layout.channel is not None:
        chunks[layout.channel] = blocks[layout.channel] = shape[layout.channel]
    side = block or BLOCK_SIDE[vae.ndim]
    for pos in layout.spatial:
        chunks[pos] = min(CHUNK_SIDE[vae.ndim], side, shape[pos])
        blocks[pos] = max(side // chunks[pos], 1) * chunks[pos]
    out_dtypes = [image.dtype if dtype == "input" else np.float32, np.float32][: len(outputs)]
    main_tmp = temporary_path(outputs[0])
    done = _load_done(main_tmp, settings) if main_tmp.exists() else []
    targets = [
        create_image(
            path,
            shape,
            dt,
            image.axes,
            image.voxel_size,
            tuple(chunks),
            image.units,
            resume=bool(done),
        )
        for path, dt in zip(outputs, out_dtypes)
    ]

    def record(flat: int) -> None:
        done.append(flat)
        _save_done(main_tmp, settings, done)

    stats = tile_reconstruct(
        image.array,
        targets,
        Reconstructor(vae, quantizers, mode, samples),
        image.axes,
        vae.ndim,
        tile,
        overlap,
        blocks,
        batch_size,
        list(done),
        record,
        cache_mb * 2**20,
        progress,
    )
    remove_path(main_tmp / PROGRESS_FILE)
    for path in reversed(outputs):
        finalize_image(temporary_path(path), path, overwrite=overwrite, progress=progress)
    return stats


def _subsample(image, layout: Layout, channel: int, max_voxels: int = 2**22) -> np.ndarray:
    """A strided sample of one channel (at most ~``max_voxels``) for percentile estimates."""
    step = max(1, int(np.ceil((np.prod(image.shape) / max_voxels) ** (1 / len(image.shape)))))
    idx = [slice(None, None, step)] * len(image.shape)
    if layout.channel is not None:
        idx[layout.channel] = channel
    return np.asarray(image.array[tuple(idx)])
