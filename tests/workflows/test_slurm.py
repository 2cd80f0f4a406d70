"""On a real one-node SLURM cluster (root on Debian; skipped elsewhere with the reason):
train_ddp.sbatch with 2 DDP tasks (gloo on CPU), requeued by SIGUSR1 and resumed at the same
step, and the workflow run through the SLURM profile (snakemake-executor-plugin-slurm)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.workflows.conftest import REPO, TINY_FIT, snakemake, write_config

pytestmark = pytest.mark.slow


def _slurm(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout.strip()


def _wait(what: str, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _global_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.fixture
def slurm_env(cellvae_env, slurm_cluster) -> dict[str, str]:
    return {**cellvae_env, "SLURM_CONF": slurm_cluster["SLURM_CONF"]}


def test_train_ddp_sbatch_two_tasks_requeues_and_resumes(slurm_env, tiny_image, tmp_path):
    from cellvae.io.ingest import ingest

    zarr = ingest(tiny_image[0], tmp_path / "tiny.ome.zarr", axes="yx", progress=False)
    steps = 40
    run = tmp_path / "run"
    fit = {**TINY_FIT, "trainer.max_steps": steps, "trainer.val_check_interval": 5}
    env = {**slurm_env, "CELLVAE_RUN_DIR": str(run)}
    job = _slurm(
        env,
        "sbatch",
        "--parsable",
        "--ntasks-per-node=2",  # world size 2: two DDP ranks (gloo)
        "--cpus-per-task=1",
        "--gpus-per-node=0",
        "--mem-per-cpu=1500M",
        "--time=15",
        f"--output={tmp_path}/fit-%j.out",
        str(REPO / "workflows" / "hpc" / "train_ddp.sbatch"),
        str(REPO / "configs" / "2d_hier_dlogistic.yaml"),
        f"--data.paths=[{zarr}]",
        *(f"--{k}={v}" for k, v in fit.items()),
    )
    log = tmp_path / f"fit-{job}.out"
    state = lambda: _slurm(env, "squeue", "-h", "-j", job, "-o", "%T")  # noqa: E731
    try:
        _wait("a validation checkpoint", lambda: list(run.glob("lightning_logs/*/checkpoints/*")))
        _slurm(env, "scancel", "--signal=USR1", job)  # what --signal=SIGUSR1@90 sends
        _wait("the requeue", lambda: state() in ("PENDING", "REQUEUED", "REQUEUE_HOLD"))
        # a requeued job waits ~2 min before it may start again; let it start now
        _slurm(env, "scontrol", "update", f"JobId={job}", "StartTime=now")
        _wait("the resumed job to finish", lambda: state() in ("", "COMPLETED"), timeout=400)
    finally:
        subprocess.run(["scancel", job], env=env, timeout=60)
    text = log.read_text()
    assert "restart 1" in text and "2 task(s)" in text, text[-3000:]
    assert "Restored all states from the checkpoint" in text and "hpc_ckpt_1.ckpt" in text
    assert 5 <= _global_step(run / "hpc_ckpt_1.ckpt") < steps
    (last,) = run.glob("lightning_logs/version_1/checkpoints/last.ckpt")
    assert _global_step(last) == steps


def test_workflow_runs_through_the_slurm_profile(slurm_env, tiny_image, tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", out, tiny_image, parts=2)
    done = snakemake(
        slurm_env,
        "--profile",
        "workflows/profiles/slurm",
        "--configfile",
        str(config),
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks=2",
        f"--slurm-logdir={tmp_path}/slurm_logs",
        "--slurm-keep-successful-logs",
        "--jobs=4",
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = out / "tiny" / "small"
    for name in ("recon.ome.zarr", "blur.json", "cells.parquet", "samples.tif", "report.md"):
        assert (run / name).exists(), name
    # every step was a SLURM job (the two reconstruction parts one array job)
    logdir = tmp_path / "slurm_logs"
    folders = {p.relative_to(logdir).parts[0] for p in logdir.rglob("*.log")}
    rules = ("ingest", "fit", "reconstruct_prepare", "reconstruct_part", "reconstruct", "embed")
    assert {f"rule_{r}" for r in (*rules, "blur", "sample", "report")} <= folders, folders
    parts = [p.stem for p in (logdir / "rule_reconstruct_part").rglob("*.log")]
    assert len(parts) == 2 and len({p.split("_")[0] for p in parts}) == 1, parts  # one array
