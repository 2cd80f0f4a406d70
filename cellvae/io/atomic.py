"""Write outputs under a temporary sibling name and rename them when complete.

A reader never sees a half-written image: the data goes to ``<name>.partial`` next to the
final path, and only a finished output is renamed to ``<name>``. The temporary name is
deterministic so that a rerun can find (and resume or discard) what an interrupted run left.

Two processes writing the same output would fight over that one temporary name, so a writer
first claims ``<name>.lock`` (created exclusively, holding its pid and host, and in a SLURM
job the job id and restart count) and checks that the output's folder can be written at all,
before any work starts. A second writer gets one line saying who holds the output; a lock left
by a dead process on this host is taken over, and so is one left by an earlier run of the same
SLURM job (requeued, possibly onto another node, after its processes were killed).

A command claims all its outputs at once before it starts (:func:`claim_outputs`,
:func:`claim_folder`); writers called inside that claim (:func:`atomic_output`) reuse it
instead of locking the same output a second time.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path

from cellvae.errors import CellvaeError

PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
#: lock file inside a claimed output folder (``cellvae fit``'s root, a report folder)
FOLDER_LOCK = ".cellvae"

#: absolute paths of the outputs claimed by the running command (see :func:`claim_outputs`)
_CLAIMED: ContextVar[frozenset[str]] = ContextVar("cellvae_claimed", default=frozenset())


def _key(path: str | os.PathLike) -> str:
    return os.path.abspath(path)


class OutputBusyError(CellvaeError):
    """Another live process is writing the same output."""

    exit_code = 75  # EX_TEMPFAIL: try again once the other writer is done


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


def lock_path(final: str | os.PathLike) -> Path:
    """The lock file ``<final>.lock`` that a writer of ``final`` holds while it works."""
    final = Path(final)
    return final.with_name(final.name + LOCK_SUFFIX)


def check_writable(final: str | os.PathLike) -> Path:
    """Refuse an output whose folder is missing or cannot be written, before any work starts.

    Writes and removes a probe file, so read-only mounts and permissions are both caught (a
    permission check alone is always true for root).
    """
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        raise CellvaeError(f"{final}: parent folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".probe", dir=parent)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CellvaeError(f"{final}: cannot write to {parent} ({reason})") from None
    os.close(fd)
    os.unlink(probe)
    return final


def _slurm_run() -> tuple[str, int] | None:
    """``(job id, restart count)`` of the SLURM job this process runs in, or None."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if not job:
        return None
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return job, int(restart) if restart.isdigit() else 0


def _lock_text() -> str:
    run = _slurm_run()
    job = f" {run[0]} {run[1]}" if run else ""
    return f"{os.getpid()} {socket.gethostname()}{job}\n"


def _lock_owner(lock: Path) -> tuple[int, str, tuple[str, int] | None] | None:
    """(pid, host, SLURM (job, restart) or None) recorded in ``lock``; None if unreadable."""
    try:
        fields = lock.read_text().split()
        owner = int(fields[0]), fields[1]
    except (OSError, ValueError, IndexError):
        return None
    try:
        run = (fields[2], int(fields[3]))
    except (ValueError, IndexError):
        run = None  # an older lock, or one written outside SLURM: pid and host still count
    return (*owner, run)


def _stale(owner: tuple[int, str, tuple[str, int] | None]) -> bool:
    """Whether the lock's writer is surely gone: a dead pid on this host, or an earlier run of
    the SLURM job this process belongs to (a lower restart count, or another host: only one
    process of a job claims an output, and SLURM kills them all before a requeue; the restart
    count is not always passed on, e.g. through Snakemake)."""
    pid, host, run = owner
    here = host == socket.gethostname()
    if here and not _alive(pid):
        return True
    ours = _slurm_run()
    if run is None or ours is None or run[0] != ours[0]:
        return False
    return run[1] < ours[1] or not here


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def output_lock(final: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<final>.lock`` while writing ``final``; raise :class:`OutputBusyError` if taken.

    The lock records ``"<pid> <host> [<slurm job> <restart>]"``. A lock whose process is gone
    (same host only; a process on another host cannot be checked) or that an earlier run of
    this SLURM job left (a requeue kills every process of the job first) is replaced. The lock
    is removed on exit.
    Inside :func:`claim_outputs` of the same output the claim's lock is reused.
    """
    if _key(final) in _CLAIMED.get():
        yield lock_path(final)
        return
    final = check_writable(final)
    lock = lock_path(final)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and _stale(owner):
                lock.unlink(missing_ok=True)  # its writer died, or was this job's last run
                continue
            who = f"pid {owner[0]} on {owner[1]}" if owner else "another process"
            raise OutputBusyError(
                f"{final}: is being written by {who}; wait for it to finish, "
                f"or delete {lock} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(_lock_text())
        break
    else:  # pragma: no cover - only if a stale lock is re-created between two tries
        raise OutputBusyError(f"{final}: could not claim {lock}; retry")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


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

    The output is locked against other writers for the whole time (:func:`output_lock`). A
    stale temporary output of an earlier, interrupted run is discarded first.
    """
    final = check_output(final, overwrite)
    with output_lock(final):
        tmp = temporary_path(final)
        remove_path(tmp)
        try:
            yield tmp
        except BaseException:
            remove_path(tmp)
            raise
        commit(tmp, final, overwrite)


@contextmanager
def claim_outputs(
    paths: Iterable[str | os.PathLike], overwrite: bool = False
) -> Iterator[list[Path]]:
    """Claim a command's outputs before its work starts; hold them until it ends.

    Each output must be new (or ``overwrite``), its folder writable, and no other process may
    be writing it (:func:`output_lock`); otherwise one :class:`CellvaeError` line names it and
    nothing is written. Writers inside the claim reuse its locks.
    """
    finals = [check_output(p, overwrite) for p in paths]
    with ExitStack() as stack:
        for final in finals:
            check_writable(final)
        for final in finals:
            stack.enter_context(output_lock(final))
        token = _CLAIMED.set(_CLAIMED.get() | {_key(f) for f in finals})
        try:
            yield finals
        finally:
            _CLAIMED.reset(token)


@contextmanager
def claim_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Claim an output folder that a command fills with several files (created if missing).

    The lock is ``<folder>/.cellvae.lock``; a folder that cannot be created or written, or
    that another process holds, is one :class:`CellvaeError` line before any work.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CellvaeError(f"{folder}: cannot create the output folder ({reason})") from None
    with claim_outputs([folder / FOLDER_LOCK], overwrite=True):
        yield folder
