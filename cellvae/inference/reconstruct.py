"""Reconstruct a whole OME-Zarr image with a trained VAE: tiled, blended, resumable, splittable.

Outputs (OME-Zarr, the input's axes and voxel sizes, raw intensity units):

* ``RECON.zarr``: the reconstruction, float32 (or the input's dtype with ``dtype="input"``,
  rounded and clipped). With ``samples=0`` it decodes the posterior mean; with ``samples=N``
  it is the mean of ``N`` decodings of posterior samples.
* ``RECON_std.zarr`` (only with ``samples >= 1``): the per-voxel standard deviation over the
  samples, float32. Tile blending averages the per-tile standard deviations (a smooth
  approximation near tile borders).

A run has three steps (:func:`reconstruct_image` does all three; ``stage`` picks one):

1. ``prepare``: create the empty outputs under ``<name>.partial`` (idempotent);
2. ``part``: fill blocks (all of them, or part ``I`` of ``N``'s disjoint share), recording
   each finished block (:mod:`cellvae.inference.partial`), so a rerun resumes block by block;
3. ``finalize``: check every block is written, build the pyramid, rename to the final name.

Blocks are a few tiles wide (256² in 2D, 128³ in 3D by default), so an interrupted run loses
little and the progress bar moves. Finished blocks are reused only by a run with the same
*content key* (:func:`content_key`: the checkpoint's bytes, the input's fingerprint and every
option that changes voxels); a block written under another key is written again, loudly.
A store whose layout (shape, chunks, blocks, outputs) differs is discarded by ``prepare``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError, check_choice
from cellvae.inference.field import margin_for, overlap_for, receptive_radius
from cellvae.inference.layout import Layout
from cellvae.inference.model import (
    Reconstructor,
    default_patch,
    load_model,
    quantizers_for,
    warn_planewise,
)
from cellvae.inference.partial import (
    BlockRecord,
    all_part_locks,
    missing_message,
    part_blocks,
    part_lock,
    waiting_output_lock,
)
from cellvae.inference.tiling import TilingStats, block_origins, block_shape, tile_reconstruct
from cellvae.io.atomic import check_output, check_writable, output_lock, temporary_path
from cellvae.io.omezarr import create_image, finalize_image, open_image
from cellvae.io.remote import is_url

#: Output chunk side and block side (block = unit of writing, progress, resuming and of the
#: shares of a split run), 2D and 3D. Blocks are whole chunks, so parts never share a chunk.
CHUNK_SIDE = {2: 256, 3: 64}
BLOCK_SIDE = {2: 256, 3: 128}
STAGES = ("all", "prepare", "part", "finalize")


@dataclass(frozen=True)
class Settings:
    """Everything that determines the output; a rerun resumes only blocks of the same key.

    ``ckpt`` and ``input`` are where they were read (information only); ``ckpt_sha256`` and
    ``input_digest`` are what they hold, so a model retrained to the same path, or an image
    re-ingested to the same path, is a different output.
    """

    ckpt: str
    input: str
    ckpt_sha256: str
    input_digest: str
    tile: tuple[int, ...]
    overlap: tuple[int, ...]
    margin: tuple[int, ...]
    mode: str
    samples: int
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    block: tuple[int, ...]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a reconstruction; says how many blocks were kept for a rerun."""

    def __init__(self, path: Path, kept: int, total: int) -> None:
        super().__init__(f"kept {kept} of {total} blocks in {path}")
        self.path, self.kept, self.total = path, kept, total


def std_path(output: str | os.PathLike) -> Path:
    """``RECON.zarr`` → ``RECON_std.zarr``, where the sample standard deviation goes."""
    output = Path(output)
    return output.with_name(f"{output.stem}_std{output.suffix}")


def downsampling_of(vae) -> tuple[int, ...]:
    """The model's total downsampling per spatial axis (an int or a per-axis tuple)."""
    down = vae.downsampling
    if isinstance(down, int | np.integer):
        return (int(down),) * vae.ndim
    return tuple(int(d) for d in down)


def check_tile(vae, tile: tuple[int, ...], overlap: tuple[int, ...]) -> None:
    """Refuse tiles the model cannot take and overlaps that do not fit in a tile."""
    down = downsampling_of(vae)
    if len(tile) != vae.ndim or len(overlap) != vae.ndim:
        raise CellvaeError(f"--tile/--overlap: give 1 or {vae.ndim} values for a {vae.ndim}D model")
    if any(t < d or t % d for t, d in zip(tile, down)):
        shown = down[0] if len(set(down)) == 1 else list(down)
        raise CellvaeError(
            f"--tile: {list(tile)} must be multiples of the model's downsampling {shown} "
            f"(at least {shown})"
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
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


#: settings that fix the store's layout: a store is reused only if they match
STRUCTURE = ("shape", "chunks", "block", "samples", "dtype")


def _structure(settings: dict | None) -> dict | None:
    return None if settings is None else {k: settings.get(k) for k in STRUCTURE}


def content_key(settings: Settings | dict) -> str:
    """A short hash of every setting that changes voxels (all but the two paths).

    Blocks are recorded under it; a run with another key (new weights behind the same
    checkpoint path, a changed image, another tile, overlap, mode, ...) rewrites them.
    """
    plain = _plain(settings) if isinstance(settings, Settings) else dict(settings)
    voxels = {k: v for k, v in sorted(plain.items()) if k not in ("ckpt", "input")}
    return hashlib.sha256(json.dumps(voxels, sort_keys=True).encode()).hexdigest()[:20]


def file_sha256(path: str | os.PathLike, chunk: int = 2**20) -> str:
    """SHA-256 of a file's bytes (hex), read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(chunk):
            digest.update(piece)
    return digest.hexdigest()


def input_digest(path: str | os.PathLike, level_path: str | None = None) -> str:
    """A fingerprint of an image store without reading its pixels (hex).

    The metadata files of the store and of its level-0 array (axes, scales, the intensity
    statistics ``cellvae ingest`` stores), and the name, size and modification time of every
    chunk file of that array: re-ingesting or editing the image changes it, moving it does
    not. Only local stores are listed; others contribute their path.
    """
    root = Path(path)
    digest = hashlib.sha256()
    if not root.is_dir():
        digest.update(str(path).encode())
        return digest.hexdigest()[:20]
    level = root / level_path if level_path else root
    for folder in dict.fromkeys((root, level)):
        for name in ("zarr.json", ".zattrs", ".zgroup", ".zarray"):
            meta = folder / name
            if meta.is_file():
                digest.update(f"{folder.relative_to(root)}/{name}:".encode() + meta.read_bytes())
    if level.is_dir():
        for dirpath, dirnames, filenames in os.walk(level):
            dirnames.sort()
            for name in sorted(filenames):
                stat = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), level)
                digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:20]


@dataclass
class _Plan:
    """What a run needs: model, image, settings, and the output paths."""

    outputs: list[Path]
    settings: Settings
    image: object
    layout: Layout
    out_dtypes: list
    vae: object = None
    quantizers: list | None = None
    compile: bool = False

    @property
    def record(self) -> BlockRecord:
        """The store's record, read and written under this run's content key."""
        return BlockRecord(temporary_path(self.outputs[0]), content_key(self.settings))

    @property
    def n_blocks(self) -> int:
        return len(block_origins(self.settings.shape, self.settings.block))


def _device(name: str):
    """``"cpu"``, ``"cuda"`` (refused without a GPU) or ``"auto"`` (a GPU if there is one)."""
    import torch

    check_choice("--device", name, ("cpu", "cuda", "auto"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise CellvaeError("--device: cuda asked for but torch sees no GPU")
    return torch.device(name)


def _plan(ckpt, input, output, tile, overlap, samples, mode, dtype, block, device) -> _Plan:
    vae, hparams = load_model(ckpt)
    vae.to(_device(device))
    image = open_image(input)
    layout = Layout.of(image.axes, vae.ndim, source=str(input))
    warn_planewise(vae.ndim, image.axes, image.shape, str(input))
    channels = layout.channels(image.shape)
    if channels != vae.in_channels:
        raise CellvaeError(
            f"{input}: {channels} channel(s) but the model was trained on {vae.in_channels}"
        )
    tile = _sides(tile, vae.ndim) or default_patch(vae, hparams)
    check_tile(vae, tile, (0,) * len(tile))
    radius = receptive_radius(vae, tile)
    overlap = _sides(overlap, vae.ndim) or overlap_for(radius, tile)
    check_tile(vae, tile, overlap)
    shape = tuple(int(s) for s in image.shape)
    chunks, blocks = [1] * len(shape), [1] * len(shape)
    side = block or BLOCK_SIDE[vae.ndim]
    for pos in layout.spatial:
        chunks[pos] = min(CHUNK_SIDE[vae.ndim], side, shape[pos])
        blocks[pos] = max(side // chunks[pos], 1) * chunks[pos]
    if layout.channel is not None:
        chunks[layout.channel] = shape[layout.channel]
    settings = Settings(
        str(Path(ckpt).resolve()),
        str(input) if is_url(input) else str(Path(input).resolve()),
        file_sha256(ckpt),
        input_digest(input, image.levels[0] if image.levels else None),
        tuple(tile),
        tuple(overlap),
        margin_for(radius, overlap),
        mode,
        samples,
        dtype,
        shape,
        tuple(chunks),
        block_shape(shape, blocks, layout),
    )
    quantizers = quantizers_for(
        image.stats,
        channels,
        int(hparams.get("bits", 8)),
        lambda c: _subsample(image, layout, c),
    )
    outputs = [Path(output)] + ([std_path(output)] if samples else [])
    out_dtypes = [image.dtype if dtype == "input" else np.float32, np.float32][: len(outputs)]
    return _Plan(outputs, settings, image, layout, out_dtypes, vae, quantizers)


def _prepare(plan: _Plan, discard: bool) -> None:
    """Create the empty outputs, or keep a store of the same layout (its blocks are reused
    only under the same content key). A store of another layout is discarded if ``discard``
    (caller holds every lock), else refused (a part never destroys another part's work)."""
    record = plan.record
    found = record.settings()
    wanted = _plain(plan.settings)
    if found is not None and _structure(found) == _structure(wanted):
        if found != wanted:
            record.write_settings(wanted)  # the parts rewrite blocks of another key
        return
    if found is not None and not discard:
        raise CellvaeError(
            f"{record.tmp}: was prepared with other settings; run --prepare again "
            "(it restarts the output) or give the same options as the other parts"
        )
    for path, dt in zip(plan.outputs, plan.out_dtypes):
        image = plan.image
        create_image(
            path,
            plan.settings.shape,
            dt,
            image.axes,
            image.voxel_size,
            plan.settings.chunks,
            image.units,
        )
    record.write_settings(wanted)


def _warn_stale(record: BlockRecord, who: str, blocks: range | None = None) -> None:
    """Say loudly that recorded blocks were written under another content key."""
    stale = record.stale() if blocks is None else record.stale() & set(blocks)
    if stale:
        warnings.warn(
            f"{record.tmp}: {len(stale)} finished block(s) were written with another "
            f"checkpoint, image or options; {who} writes them again with this one",
            stacklevel=3,
        )


#: voxels per model call that the default batch size aims at (see :func:`default_batch`)
BATCH_VOXELS = 2**18


def default_batch(tile: tuple[int, ...]) -> int:
    """Tiles per model call when none is given: ``2**18`` voxels, 1 to 16 tiles.

    Measured with the 2D preset on 64² tiles (1024² image, 2 CPU threads, 3 interleaved
    pairs): 16 tiles per call gave 1.17-2.5x the pixels/s of 4. Large 3D tiles get fewer,
    so memory stays bounded on a GPU.
    """
    return max(1, min(16, BATCH_VOXELS // math.prod(tile)))


def _fill(plan: _Plan, blocks: range, batch_size: int | None, cache_mb: int, progress: bool):
    """Reconstruct the not yet recorded ``blocks`` into the prepared store."""
    import zarr

    record = plan.record
    targets = [zarr.open_array(str(temporary_path(p) / "s0"), mode="r+") for p in plan.outputs]
    s = plan.settings
    try:
        return tile_reconstruct(
            plan.image.array,
            targets,
            Reconstructor(plan.vae, plan.quantizers, s.mode, s.samples, compile=plan.compile),
            plan.image.axes,
            plan.vae.ndim,
            s.tile,
            s.overlap,
            s.block,
            batch_size or default_batch(s.tile),
            record.done(),
            record.mark,
            cache_mb * 2**20,
            progress,
            blocks,
            s.margin,
        )
    except KeyboardInterrupt:
        raise Interrupted(record.tmp, len(record.done()), plan.n_blocks) from None


def _finalize(plan: _Plan, overwrite: bool, progress: bool) -> None:
    """Refuse an incomplete store (naming the parts to rerun), else pyramid and rename."""
    record = plan.record
    found = record.settings()
    if found is None:
        raise CellvaeError(f"{plan.outputs[0]}: nothing to finalize; run --prepare and the parts")
    if _structure(found) != _structure(_plain(plan.settings)):
        raise CellvaeError(f"{record.tmp}: was written with other settings than these")
    missing = set(range(plan.n_blocks)) - record.done()
    if missing:
        stale = len(missing & record.stale())
        message = missing_message(plan.outputs[0], missing, plan.n_blocks, record.parts(), stale)
        raise CellvaeError(message)
    with warnings.catch_warnings():  # zarr notes the record's files among the group's members
        warnings.filterwarnings("ignore", "Object at cellvae_", UserWarning)
        for path in reversed(plan.outputs):
            finalize_image(temporary_path(path), path, overwrite=overwrite, progress=progress)
    BlockRecord(plan.outputs[0]).clear()  # only now: an interrupted finalize keeps the record


def reconstruct_image(
    ckpt: str | os.PathLike,
    input: str | os.PathLike,
    output: str | os.PathLike,
    tile: int | tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    samples: int = 0,
    mode: str = "mean",
    batch_size: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    block: int | None = None,
    cache_mb: int = 256,
    progress: bool = True,
    stage: str = "all",
    part: tuple[int, int] = (1, 1),
    device: str = "cpu",
    compile: bool = False,
) -> TilingStats:
    """Reconstruct ``input`` (OME-Zarr) with the VAE in ``ckpt`` into ``output``.

    ``tile``/``overlap`` are voxels per spatial axis (one value for all, or one per axis);
    they default to the model's patch and three radii of its measured receptive field
    (:mod:`cellvae.inference.field`), whose radius at inner tile edges gets no weight.
    ``block`` is the side of the blocks written at once (default 256 in 2D, 128 in 3D;
    whole chunks of 256 / 64).
    ``stage`` is ``"all"`` (prepare, fill every block, finalize), ``"prepare"``, ``"part"``
    (fill part ``part = (I, N)``'s share; prepares first if needed) or ``"finalize"``.
    ``device`` runs the model on ``"cpu"``, ``"cuda"`` or ``"auto"`` (a GPU if present);
    ``compile`` runs it through ``torch.compile`` (see :class:`Reconstructor`): worth its
    10-30 s of compiling on images of more than a few hundred tiles.
    Returns what the fill did (all zeros for ``prepare`` and ``finalize``).
    """
    check_choice("stage", stage, STAGES)
    check_choice("--mode", mode, ("mean", "mode"))
    check_choice("--dtype", dtype, ("float32", "input"))
    if samples < 0 or (batch_size is not None and batch_size < 1):
        raise CellvaeError("--samples must be >= 0 and --batch-size >= 1")
    outputs = [Path(output)] + ([std_path(output)] if samples else [])
    for path in outputs:
        check_output(path, overwrite)
        check_writable(path)
    out = outputs[0]
    # the lock first (a second writer hears so at once), then the model and the image
    lock = part_lock(out, *part) if stage == "part" else output_lock(out)
    with lock:
        plan = _plan(ckpt, input, output, tile, overlap, samples, mode, dtype, block, device)
        plan.compile = compile
        try:
            return _run_stage(plan, stage, part, batch_size, cache_mb, overwrite, progress)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            done = plan.record.done() if plan.record.settings() is not None else set()
            raise Interrupted(plan.record.tmp, len(done), plan.n_blocks) from None


def _run_stage(
    plan: _Plan,
    stage: str,
    part: tuple[int, int],
    batch_size: int | None,
    cache_mb: int,
    overwrite: bool,
    progress: bool,
) -> TilingStats:
    """One stage, its lock held: the part's own (``part``), else the output's."""
    out = plan.outputs[0]
    if stage == "part":
        with waiting_output_lock(out):
            _prepare(plan, discard=False)
            plan.record.write_parts(part[1])
        share = part_blocks(plan.n_blocks, *part)
        _warn_stale(plan.record, f"part {part[0]}/{part[1]}", share)
        return _fill(plan, share, batch_size, cache_mb, progress)
    stats = TilingStats()
    if stage == "prepare" and plan.record.settings() == _plain(plan.settings):
        return stats  # already prepared: nothing to do, parts may be running
    if stage == "all":
        _warn_stale(plan.record, "this run")
    with all_part_locks(out):  # prepare may discard, finalize renames: no part may run
        if stage != "finalize":
            _prepare(plan, discard=True)
        if stage == "all":
            stats = _fill(plan, range(plan.n_blocks), batch_size, cache_mb, progress)
        if stage != "prepare":
            _finalize(plan, overwrite, progress)
    return stats


def _subsample(image, layout: Layout, channel: int, max_voxels: int = 2**22) -> np.ndarray:
    """A strided sample of one channel (at most ~``max_voxels``) for percentile estimates."""
    step = max(1, int(np.ceil((np.prod(image.shape) / max_voxels) ** (1 / len(image.shape)))))
    idx = [slice(None, None, step)] * len(image.shape)
    if layout.channel is not None:
        idx[layout.channel] = channel
    return np.asarray(image.array[tuple(idx)])
