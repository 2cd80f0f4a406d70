"""A reconstruction in progress on disk: its settings, which blocks are written, by which part.

An output ``RECON.zarr`` is filled under ``RECON.zarr.partial`` (:mod:`cellvae.io.atomic`)
block by block. The ``.partial`` store records

* ``cellvae_settings.json``: everything that determines the output (written last by the step
  that creates the store, so its presence means the store is complete and ready to fill);
* ``cellvae_done/<k>``: one file per finished block ``k`` (flat raster index), created only
  after the block's pixels are stored, holding the *content key* it was written under: a hash
  of the checkpoint's bytes, the input's fingerprint and every option that changes voxels
  (:func:`cellvae.inference.reconstruct.content_key`). A block counts as done only for a run
  with the same key, so a retrained model (same checkpoint path, new weights) or a changed
  image never reuses stale blocks. Files, not one list, so that several processes can mark
  blocks at once without rewriting each other's records;
* ``cellvae_parts``: the ``N`` of the last ``--part I/N`` run, to name missing parts.

A split run gives part ``I`` of ``N`` a contiguous run of blocks in raster order, so parts
write disjoint sets of chunks. Each part holds its own lock ``RECON.zarr.part-I-of-N.lock``
beside the output, so the same part cannot run twice at once while different parts can; the
steps that create, discard or finalise the store hold the output's own lock and every part lock.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cellvae.errors import CellvaeError
from cellvae.io.atomic import LOCK_SUFFIX, OutputBusyError, output_lock

SETTINGS_FILE = "cellvae_settings.json"
DONE_DIR = "cellvae_done"
PARTS_FILE = "cellvae_parts"
_PART_LOCK = re.compile(r"\.part-(\d+)-of-(\d+)" + re.escape(LOCK_SUFFIX) + "$")


def parse_part(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``1 <= I <= N``; anything else is a one-line error."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise CellvaeError(f"--part: {text!r} must be I/N with 1 <= I <= N, e.g. 2/4")
    return int(match[1]), int(match[2])


def part_blocks(n_blocks: int, part: int, parts: int) -> range:
    """Flat indices of the blocks of part ``part`` of ``parts``: a contiguous share."""
    return range((part - 1) * n_blocks // parts, part * n_blocks // parts)


def part_of(block: int, n_blocks: int, parts: int) -> int:
    """The part (1-based, of ``parts``) whose share holds ``block``."""
    return next(i for i in range(1, parts + 1) if block in part_blocks(n_blocks, i, parts))


def _part_name(final: Path, part: int, parts: int) -> Path:
    return final.with_name(f"{final.name}.part-{part}-of-{parts}")


@contextmanager
def part_lock(final: str | os.PathLike, part: int, parts: int) -> Iterator[Path]:
    """Hold ``<final>.part-I-of-N.lock``: one process per part, any number of parts at once."""
    with output_lock(_part_name(Path(final), part, parts)) as lock:
        yield lock


@contextmanager
def all_part_locks(final: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of every part that has one beside ``final``; busy if any part is alive.

    Locks of dead parts are taken over (and removed on exit), so a crashed split run does
    not block finalising or restarting.
    """
    final = Path(final)
    with ExitStack() as stack:
        for lock in sorted(final.parent.glob(f"{final.name}.part-*-of-*{LOCK_SUFFIX}")):
            match = _PART_LOCK.search(lock.name)
            if match is not None:
                stack.enter_context(part_lock(final, int(match[1]), int(match[2])))
        yield


@contextmanager
def waiting_output_lock(final: str | os.PathLike, timeout: float = 120.0) -> Iterator[Path]:
    """:func:`~cellvae.io.atomic.output_lock`, retried for up to ``timeout`` seconds.

    Parts that start together all try to create the store; each waits its turn for the
    few moments another holds the lock instead of failing.
    """
    deadline = time.monotonic() + timeout
    with ExitStack() as stack:
        while True:
            try:
                stack.enter_context(output_lock(final))
                break
            except OutputBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Path(final)


class BlockRecord:
    """The settings and the finished blocks recorded in a ``.partial`` store ``tmp``.

    ``key`` is the content key of the run reading the record: :meth:`done` counts only blocks
    written under it and :meth:`mark` records it (``None``: any key, for inspection).
    """

    def __init__(self, tmp: str | os.PathLike, key: str | None = None) -> None:
        self.tmp = Path(tmp)
        self.key = key

    def settings(self) -> dict | None:
        """The recorded settings, or None if the store is missing or was never completed."""
        try:
            return json.loads((self.tmp / SETTINGS_FILE).read_text())
        except (OSError, ValueError):
            return None

    def write_settings(self, settings: dict) -> None:
        """Record ``settings`` (call last, once the store is complete)."""
        (self.tmp / DONE_DIR).mkdir(exist_ok=True)
        part = self.tmp / (SETTINGS_FILE + ".tmp")
        part.write_text(json.dumps(settings))
        os.replace(part, self.tmp / SETTINGS_FILE)

    def marks(self) -> dict[int, str]:
        """Every recorded block and the content key it was written under."""
        folder = self.tmp / DONE_DIR
        if not folder.is_dir():
            return {}
        found = {}
        for p in folder.iterdir():
            if p.name.isdigit():
                try:
                    found[int(p.name)] = p.read_text().strip()
                except OSError:  # removed meanwhile by a restart
                    continue
        return found

    def done(self) -> set[int]:
        """Flat indices of the blocks written under this record's key (any key if ``None``)."""
        return {b for b, k in self.marks().items() if self.key is None or k == self.key}

    def stale(self) -> set[int]:
        """Blocks recorded under another key: written by another model, image or setting."""
        if self.key is None:
            return set()
        return {b for b, k in self.marks().items() if k != self.key}

    def mark(self, block: int) -> None:
        """Record ``block`` as written under this record's key (after its pixels are stored)."""
        folder = self.tmp / DONE_DIR
        part = folder / f".{block}.{os.getpid()}.tmp"
        part.write_text(self.key or "")
        os.replace(part, folder / str(block))

    def clear(self) -> None:
        """Forget the record, leaving the pixels (before the store is finalised)."""
        folder = self.tmp / DONE_DIR
        if folder.is_dir():
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
        for name in (SETTINGS_FILE, PARTS_FILE):
            (self.tmp / name).unlink(missing_ok=True)

    def parts(self) -> int | None:
        """The ``N`` of the last split run, or None."""
        try:
            return int((self.tmp / PARTS_FILE).read_text())
        except (OSError, ValueError):
            return None

    def write_parts(self, parts: int) -> None:
        """Record that this store is being filled in ``parts`` parts."""
        part = self.tmp / f"{PARTS_FILE}.{os.getpid()}.tmp"
        part.write_text(str(parts))
        os.replace(part, self.tmp / PARTS_FILE)


def missing_message(
    final: Path, missing: set[int], n_blocks: int, parts: int | None, stale: int = 0
) -> str:
    """One line saying how many blocks are missing and which parts to rerun.

    ``stale`` of the missing blocks were written under another content key (another model,
    image or voxel-changing option).
    """
    head = f"{final}: {len(missing)} of {n_blocks} blocks are not written"
    if stale:
        head += f" ({stale} were written with another checkpoint, image or options)"
    if not parts:
        return f"{head}; rerun without --finalize to complete them"
    todo = sorted({part_of(b, n_blocks, parts) for b in missing})
    return f"{head}; rerun " + ", ".join(f"--part {i}/{parts}" for i in todo)
