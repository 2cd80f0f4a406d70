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
little and the progress bar moves. A different checkpoint or setting starts afresh.
"""

from __future__ import annotations

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
    """Everything that determines the output; a rerun resumes only if these match."""

    ckpt: str
    input: str
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
        return BlockRecord(temporary_path(self.outputs[0]))

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
    """Create the empty outputs, or keep a matching store; a mismatching one is discarded
    if ``discard`` (caller holds every lock), else refused (a part never destroys work)."""
    record = plan.record
    found = record.settings()
    if found == _plain(plan.settings):
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
    record.write_settings(_plain(plan.settings))


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
    if found != _plain(plan.settings):
        raise CellvaeError(f"{record.tmp}: was written with other settings than these")
    missing = set(range(plan.n_blocks)) - record.done()
    if missing:
        raise CellvaeError(missing_message(plan.outputs[0], missing, plan.n_blocks, record.parts()))
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
        return _fill(plan, share, batch_size, cache_mb, progress)
    stats = TilingStats()
    if stage == "prepare" and plan.record.settings() == _plain(plan.settings):
        return stats  # already prepared: nothing to do, parts may be running
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
