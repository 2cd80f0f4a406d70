"""Atomic outputs: the lock that keeps two writers apart and the up-front writability check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from cellvae.errors import CellvaeError
from cellvae.io.atomic import (
    OutputBusyError,
    atomic_output,
    check_writable,
    lock_path,
    output_lock,
    temporary_path,
)


def test_second_writer_of_the_same_output_is_refused_and_the_first_finishes(tmp_path):
    out = tmp_path / "out.txt"
    with atomic_output(out) as tmp:
        tmp.write_text("first")
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()} on"):
            with atomic_output(out, overwrite=True):
                pass
        assert tmp.read_text() == "first"  # the refused writer removed nothing
    assert out.read_text() == "first"
    assert not lock_path(out).exists()
    assert not temporary_path(out).exists()


def test_lock_is_released_when_the_writer_fails(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not out.exists() and not temporary_path(out).exists()
    assert not lock_path(out).exists()


def test_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    out = tmp_path / "out.txt"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lock_path(out).write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")
    with output_lock(out) as lock:
        assert lock.read_text().split()[0] == str(os.getpid())


def test_lock_from_another_host_is_respected(tmp_path):
    out = tmp_path / "out.txt"
    lock_path(out).write_text("1 some-other-node\n")
    with pytest.raises(OutputBusyError, match="pid 1 on some-other-node"):
        with output_lock(out):
            pass
    assert lock_path(out).exists()  # not ours to remove


def test_unwritable_folder_is_reported_before_any_work(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(CellvaeError, match=r"cannot write to .* \(Permission denied\)"):
        check_writable(tmp_path / "out.zarr")


def test_missing_parent_folder_is_named(tmp_path):
    with pytest.raises(CellvaeError, match=r"parent folder .*nope does not exist"):
        check_writable(tmp_path / "nope" / "out.zarr")


def test_writability_probe_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "out.zarr")
    assert list(tmp_path.iterdir()) == []


def test_lock_of_an_earlier_run_of_this_slurm_job_on_another_node_is_taken_over(
    tmp_path, monkeypatch
):
    out = tmp_path / "out.txt"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lock_path(out).write_text("1 node-before-requeue 4242 0\n")  # rank 0 killed by the requeue
    with output_lock(out) as lock:
        assert lock.read_text().split() == [str(os.getpid()), socket.gethostname(), "4242", "1"]
    assert not lock_path(out).exists()


@pytest.mark.parametrize(
    "held",
    ["1 other-node 4243 0", "1 other-node", f"{os.getpid()} {socket.gethostname()} 4242 1"],
    ids=["another job", "no job recorded", "a live process of this run here"],
)
def test_lock_of_another_slurm_job_or_this_run_on_another_node_is_respected(
    tmp_path, monkeypatch, held
):
    out = tmp_path / "out.txt"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lock_path(out).write_text(held + "\n")
    with pytest.raises(OutputBusyError, match="is being written by pid"), output_lock(out):
        pass
    assert lock_path(out).read_text() == held + "\n"


def test_lock_of_this_slurm_job_on_another_node_is_taken_over_without_a_restart_count(
    tmp_path, monkeypatch
):
    out = tmp_path / "out.txt"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)  # Snakemake does not pass it on
    lock_path(out).write_text("1 node-before-requeue 4242 0\n")
    with output_lock(out):
        pass
