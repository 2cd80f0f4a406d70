"""workflows/hpc/train_ddp.sbatch and configs/layers/slurm_ddp.yaml: the script parses, its options
agree with Lightning's SLURM environment, and a SIGUSR1 before the time limit saves, requeues
and resumes at the same global step (SLURM simulated by its environment variables and a
stand-in `scontrol`; tests/workflows/test_slurm.py does it on a real cluster)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.workflows.conftest import REPO, TINY_FIT

SBATCH = REPO / "workflows" / "hpc" / "train_ddp.sbatch"
LAYER = REPO / "configs" / "layers" / "slurm_ddp.yaml"


def sbatch_options(path: Path = SBATCH) -> dict[str, str]:
    """`#SBATCH --key=value` lines (not the commented-out `##SBATCH` ones) as a dict."""
    options = {}
    for line in path.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.split()[1].removeprefix("--").partition("=")
            options[key] = value
    return options


def test_sbatch_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sbatch_options_match_lightnings_slurm_environment(monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    options = sbatch_options()
    # one task per GPU, per node: Lightning refuses --ntasks > 1 without --ntasks-per-node
    assert "ntasks" not in options
    assert options["ntasks-per-node"] == options["gpus-per-node"]
    assert "requeue" in options and options["open-mode"] == "append"
    signal_name, seconds = options["signal"].split("@")
    assert not signal_name.startswith("B:")  # must reach the srun tasks, not only the shell
    assert int(seconds) >= 60

    layer = yaml.safe_load(LAYER.read_text())["trainer"]
    (plugin,) = layer["plugins"]
    assert plugin["class_path"].endswith("environments.SLURMEnvironment")
    assert plugin["init_args"]["auto_requeue"] is False  # it would save inside the handler
    (callback,) = layer["callbacks"]
    assert callback["class_path"] == "cellvae.training.requeue.SlurmRequeue"
    assert callback["init_args"]["signal_name"] == signal_name  # listens for what SLURM sends

    body = SBATCH.read_text()
    assert "srun " in body and "configs/layers/slurm_ddp.yaml" in body
    assert '--trainer.devices="$SLURM_NTASKS_PER_NODE"' in body
    assert '--trainer.num_nodes="$SLURM_NNODES"' in body

    for key in ("MASTER_ADDR", "MASTER_PORT"):  # Lightning sets them: undo at teardown
        monkeypatch.setenv(key, "unset")
        monkeypatch.delenv(key)
    # what SLURM sets for `sbatch --nodes=2 --ntasks-per-node=4`, as Lightning reads it
    for key, value in {
        "SLURM_NTASKS": "8",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_NNODES": "2",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_JOB_NAME": "cellvae-fit",
        "SLURM_NODELIST": "gpu[07-08]",
        "SLURM_JOB_ID": "123456",
    }.items():
        monkeypatch.setenv(key, value)
    env = SLURMEnvironment(auto_requeue=False)
    assert SLURMEnvironment.detect()
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 1)
    assert env.main_address == "gpu07"
    env.validate_settings(num_devices=4, num_nodes=2)  # what the sbatch script passes
    with pytest.raises(ValueError, match="devices"):
        env.validate_settings(num_devices=8, num_nodes=1)


@pytest.fixture(scope="module")
def tiny_zarr(tmp_path_factory, tiny_image) -> Path:
    from cellvae.io.ingest import ingest

    out = tmp_path_factory.mktemp("requeue") / "tiny.ome.zarr"
    return ingest(tiny_image[0], out, axes="yx", progress=False)


def _fit_command(zarr: Path, root: Path, max_steps: int) -> list[str]:
    overrides = {**TINY_FIT, "trainer.max_steps": max_steps, "trainer.val_check_interval": 5}
    return [
        sys.executable,
        "-m",
        "cellvae",
        "fit",
        "--config",
        str(REPO / "configs" / "2d_hier_dlogistic.yaml"),
        "--config",
        str(LAYER),
        "--trainer.num_nodes=1",
        "--trainer.devices=1",
        f"--data.paths=[{zarr}]",
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
        *(f"--{k}={v}" for k, v in overrides.items()),
    ]


def _slurm_env(cellvae_env: dict[str, str], job_id: str, bin_dir: Path) -> dict[str, str]:
    """A one-task SLURM job as srun would describe it, with a stand-in `scontrol` first."""
    env = {k: v for k, v in cellvae_env.items() if not k.startswith(("SLURM_", "MASTER_"))}
    env.update(
        SLURM_JOB_ID=job_id,
        SLURM_JOB_NAME="cellvae-fit",
        SLURM_NTASKS="1",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NNODES="1",
        SLURM_NODEID="0",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODELIST="127.0.0.1",
        PATH=f"{bin_dir}{os.pathsep}{cellvae_env['PATH']}",
    )
    return env


def _logged_steps(metrics: Path) -> list[int]:
    """The training steps of ``metrics.csv`` rows (validation rows have no train/loss)."""
    import csv

    with metrics.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]


def _step(path: Path) -> tuple[int, set[float]]:
    """Global step of a checkpoint and the step counts in its Adam state."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    adam = ckpt["optimizer_states"][0]["state"]
    return ckpt["global_step"], {float(s["step"]) for s in adam.values()}


@pytest.mark.slow
def test_sigusr1_saves_requeues_and_resumes_at_the_same_step(cellvae_env, tiny_zarr, tmp_path):
    steps = 40
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    requests = tmp_path / "scontrol.log"
    fake = bin_dir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {requests}\n')
    fake.chmod(0o755)

    straight = tmp_path / "straight"
    env = _slurm_env(cellvae_env, "4241", bin_dir)
    done = subprocess.run(
        _fit_command(tiny_zarr, straight, steps), env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    (last,) = straight.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    assert _step(last) == (steps, {float(steps)})

    requeued = tmp_path / "requeued"
    env = _slurm_env(cellvae_env, "4242", bin_dir)
    command = _fit_command(tiny_zarr, requeued, steps)
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not list(requeued.glob("lightning_logs/version_0/checkpoints/*.ckpt")):
        assert first.poll() is None and time.monotonic() < deadline, "no validation checkpoint"
        time.sleep(0.05)
    first.send_signal(signal.SIGUSR1)  # what `#SBATCH --signal=SIGUSR1@90` delivers
    log = first.communicate(timeout=120)[0].decode()
    assert first.returncode == 0, log[-2000:]
    assert requests.read_text().split() == ["requeue", "4242"]
    saved, adam = _step(requeued / "hpc_ckpt_1.ckpt")
    assert 5 <= saved < steps and adam == {float(saved)}
    stopped = requeued / "lightning_logs/version_0/checkpoints/last.ckpt"
    assert _step(stopped)[0] == saved  # stopped at the save: no steps done twice

    # the requeued job: same job id, same command, restart 1; it resumes from hpc_ckpt_1.ckpt
    env["SLURM_RESTART_COUNT"] = "1"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Restored all states from the checkpoint" in second.stdout + second.stderr
    assert f"resuming from {requeued / 'hpc_ckpt_1.ckpt'}" in second.stderr
    # one run folder per job: the logs continue in version_0, no version_1
    assert [p.name for p in (requeued / "lightning_logs").iterdir()] == ["version_0"]
    assert _step(stopped) == (steps, {float(steps)})  # as if never interrupted
    steps_logged = _logged_steps(requeued / "lightning_logs/version_0/metrics.csv")
    assert steps_logged == sorted(set(steps_logged)) and max(steps_logged) == steps - 1


def test_batch_shell_passes_its_signal_to_the_training_tasks(tmp_path):
    """`--signal=B:USR1@90` signals only the batch shell: it must reach srun (which forwards
    it to every task), and the script must end with srun's status, not die with the signal."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    got = tmp_path / "srun_got"
    fake = bin_dir / "srun"  # stands in for srun: records the signal, then exits 0 like a task
    fake.write_text(
        "#!/bin/bash\n"
        f"trap 'echo USR1 >> {got}; exit 0' USR1\n"
        f"echo started > {tmp_path}/srun_started\n"
        "while true; do sleep 0.1; done\n"
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "7",
        "SLURM_NNODES": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_JOB_NAME": "cellvae-fit",
        "CELLVAE_RUN_DIR": str(tmp_path / "run"),
    }
    script = subprocess.Popen(
        ["bash", str(SBATCH), "model.yaml"], env=env, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "srun_started").exists():
        assert time.monotonic() < deadline and script.poll() is None, "srun did not start"
        time.sleep(0.05)
    script.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@90 delivers
    out = script.communicate(timeout=30)[0]
    assert got.read_text().split() == ["USR1"]
    assert script.returncode == 0, out
    assert "batch shell got SIGUSR1" in out
