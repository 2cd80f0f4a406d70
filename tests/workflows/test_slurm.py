"""On a real one-node SLURM cluster (root on Debian; skipped elsewhere with the reason):
train_ddp.sbatch with 2 DDP tasks (gloo on CPU), requeued by SIGUSR1 and resumed at the same
step, and the workflow run through the SLURM profile (snakemake-executor-plugin-slurm)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cellvae.training.requeue import hpc_checkpoints as rq_hpc
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


def test_train_ddp_sbatch_survives_batch_usr1_and_an_admin_requeue(slurm_env, tiny_image, tmp_path):
    from cellvae.io.ingest import ingest

    zarr = ingest(tiny_image[0], tmp_path / "tiny.ome.zarr", axes="yx", progress=False)
    steps = 120
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

    def restart_when_requeued():
        _wait("the requeue", lambda: state() in ("PENDING", "REQUEUED", "REQUEUE_HOLD"))
        # a requeued job waits ~2 min before it may start again; let it start now
        _slurm(env, "scontrol", "update", f"JobId={job}", "StartTime=now")

    try:
        _wait("a validation checkpoint", lambda: list(run.glob("lightning_logs/*/checkpoints/*")))
        # a site's `--signal=B:USR1@90` reaches only the batch shell, which passes it on
        _slurm(env, "scancel", "--batch", "--signal=USR1", job)
        restart_when_requeued()
        _wait("the resumed run", lambda: "restart 1" in log.read_text() and _saves(log) == 1)
        first = _global_step(run / "hpc_ckpt_1.ckpt")
        # training again (a periodic save past the resume point), then an admin's requeue
        # (or a preemption): SIGTERM to every task
        _wait("training after the resume", lambda: _newest_periodic_step(run) > first)
        _slurm(env, "scontrol", "requeue", job)
        restart_when_requeued()
        _wait("the resumed job to finish", lambda: state() in ("", "COMPLETED"), timeout=400)
    finally:
        subprocess.run(["scancel", job], env=env, timeout=60)
    text = log.read_text()
    assert "restart 2" in text and "2 task(s)" in text, text[-3000:]
    assert "batch shell got SIGUSR1" in text
    events = [line for line in text.splitlines() if line.startswith("cellvae requeue:")]
    # USR1 reached both ranks (srun forwards it); both saved at the same step, one requeued
    usr1 = [e for e in events if "SIGUSR1 received" in e]
    assert {e.split(":")[1].strip() for e in usr1} == {"rank 0", "rank 1"}, events
    first_step = int(usr1[0].split("saving at step ")[1].split()[0])
    assert all(f"saving at step {first_step} " in e for e in usr1), events
    requeued = [e for e in events if "requeued SLURM job" in e]
    assert requeued and all(e.startswith("cellvae requeue: rank 0:") for e in requeued), events
    assert not [e for e in events if e.startswith("cellvae requeue: rank 1:") and "scontrol" in e]
    # the admin requeue's SIGTERM: saved again before the kill, at a later step
    term = [e for e in events if "SIGTERM received" in e]
    assert term, events
    second_step = int(term[0].split("saving at step ")[1].split()[0])
    assert first_step < second_step < steps
    resumes = [line for line in text.splitlines() if "--ckpt_path auto: resuming from" in line]
    assert [r.rsplit("/", 1)[1] for r in resumes] == ["hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt"]
    assert _global_step(run / "hpc_ckpt_1.ckpt") == first_step
    assert _global_step(run / "hpc_ckpt_2.ckpt") == second_step
    (last,) = run.glob("lightning_logs/*/checkpoints/last.ckpt")  # one run folder
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    adam = {float(v["step"]) for v in ckpt["optimizer_states"][0]["state"].values()}
    assert ckpt["global_step"] == steps and adam == {float(steps)}


def _newest_periodic_step(run: Path) -> int:
    """The highest step in the names of the run's periodic checkpoints (``...step=N.ckpt``)."""
    steps = [
        int(p.stem.split("step=")[1]) for p in run.glob("lightning_logs/*/checkpoints/*step=*")
    ]
    return max(steps, default=-1)


def _saves(log: Path) -> int:
    return log.read_text().count("--ckpt_path auto: resuming from")


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
        "--slurm-status-command=squeue",  # the local cluster has no accounting database
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


def test_workflow_fit_with_a_one_minute_limit_finishes_at_max_steps_after_requeues(
    slurm_env, tiny_image, tmp_path
):
    """The workflow's fit under a 1-minute limit: SIGUSR1 20 s before it, save, requeue,
    resume, until max_steps; the optimiser has made exactly max_steps updates."""
    import yaml

    steps = 600
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", out, tiny_image)
    settings = yaml.safe_load(config.read_text())
    settings["presets"]["small"]["overrides"].update(
        {"trainer.max_steps": steps, "trainer.val_check_interval": 200, "data.batch_size": 16}
    )
    settings["resources"]["fit"] = {"threads": 1, "mem_mb": 1500, "runtime": 1}
    settings["fit"] = {"signal_seconds": 20}
    config.write_text(yaml.safe_dump(settings))
    train = out / "tiny" / "small" / "train"
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflows" / "Snakefile"),
        "--profile",
        "workflows/profiles/slurm",
        "--configfile",
        str(config),
        "--slurm-no-account",
        "--slurm-status-command=squeue",
        "--slurm-init-seconds-before-status-checks=2",
        f"--slurm-logdir={tmp_path}/slurm_logs",
        str(train),
    ]
    started = time.monotonic()
    output = tmp_path / "snakemake.out"
    with output.open("w") as sink:  # a file, not a pipe: a full pipe would stall Snakemake
        workflow = subprocess.Popen(
            command, cwd=REPO, env=slurm_env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        while workflow.poll() is None:  # let requeued jobs start at once, not after ~2 min
            assert time.monotonic() - started < 900, "workflow timed out"
            pending = _slurm(slurm_env, "squeue", "-h", "-t", "PD", "-o", "%i %r").splitlines()
            for line in pending:
                job, reason = line.split(maxsplit=1)
                if "BeginTime" in reason:
                    _slurm(slurm_env, "scontrol", "update", f"JobId={job}", "StartTime=now")
            time.sleep(1)
    finally:
        if workflow.poll() is None:
            workflow.kill()
    text = output.read_text()
    fit_log = train / "fit.log"  # every run of the job (the rule's log has only the last)
    if not fit_log.exists():
        fit_log = out / "tiny" / "small" / "train.work" / "fit.log"
    log = fit_log.read_text() if fit_log.exists() else "(no fit log)"
    assert workflow.returncode == 0, text[-3000:] + "\n--- fit log ---\n" + log[-3000:]
    requeues = log.count("rank 0: requeued SLURM job")
    print(
        f"fit: {steps} steps under a 1-minute limit, {requeues} requeue(s), "
        f"{time.monotonic() - started:.0f} s"
    )
    assert requeues >= 1, log[-3000:]
    assert "SLURM auto-requeueing enabled" not in log  # Lightning's own is off: one mechanism
    assert log.count("--ckpt_path auto: resuming from") == requeues
    ckpt = torch.load(
        train / "lightning_logs/version_0/checkpoints/last.ckpt",
        map_location="cpu",
        weights_only=False,
    )
    adam = {float(v["step"]) for v in ckpt["optimizer_states"][0]["state"].values()}
    assert ckpt["global_step"] == steps and adam == {float(steps)}
    assert len(rq_hpc(train)) <= 2  # the newest two requeue saves are kept
