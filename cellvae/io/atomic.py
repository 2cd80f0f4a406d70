"""Write outputs under a temporary sibling name and rename them when complete.

A reader never sees a half-written image: the data goes to ``<name>.partial`` next to the
final path, and only a finished output is renamed to ``<name>``. The temporary name is
deterministic so that a rerun can find (and resume or discard) what an interrupted run left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cellvae.errors import CellvaeError

PARTIAL_SUFFIX = ".partial"


def temporary_path(final: str | os.PathLike) -> Path:
    """The temporary sibling ``<final>.partial`` under which ``final`` is written."""
    final = Path(final)
    return final.with_name(final.name + PARTIAL_SUFFIX)


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_output(final: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; returns ``final`` as a :class:`Path`."""
    final = Path(final)
    if final.exists() and not overwrite:
        raise CellvaeError(f"{final}: output exists; pass --overwrite to replace it")
    if not final.parent.exists():
        raise CellvaeError(f"{final}: parent folder {final.parent} does not exist")
    return final


def commit(tmp: str | os.PathLike, final: str | os.PathLike, overwrite: bool = False) -> Path:
    """Rename the finished ``tmp`` to ``final``; an old ``final`` is removed only afterwards."""
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        if not overwrite:
            raise CellvaeError(f"{final}: output exists; pass --overwrite to replace it")
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        remove_path(old)
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        remove_path(old)
    return final


@contextmanager
def atomic_output(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path; rename it to ``final`` on success, delete it on failure.

    A stale temporary output of an earlier, interrupted run is discarded first.
    """
    final = check_output(final, overwrite)
    tmp = temporary_path(final)
    remove_path(tmp)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    commit(tmp, final, overwrite)
