"""Container recipes (no container runtime here): every recipe runs the same install script,
and that script, run in a fresh virtual environment, gives a working `cellvae` and
`snakemake`. What is not run: `docker build` / `apptainer build` themselves and the CUDA
variant (no GPU); the CPU torch comes from the default index instead of PyTorch's CPU index."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.workflows.conftest import REPO

CONTAINERS = REPO / "workflows" / "containers"


@pytest.mark.parametrize(
    ("recipe", "variant"),
    [
        ("Dockerfile.cpu", "cpu"),
        ("Dockerfile.cuda", "cuda"),
        ("cellvae-cpu.def", "cpu"),
        ("cellvae-cuda.def", "cuda"),
    ],
)
def test_every_recipe_installs_this_repository_with_the_shared_script(recipe, variant):
    text = (CONTAINERS / recipe).read_text()
    assert f"workflows/containers/install.sh {variant} /opt/cellvae" in text
    assert "/opt/cellvae" in text.split("install.sh")[0]  # the repository is copied in first


def test_conda_env_installs_this_repository_on_a_pinned_torch():
    env = yaml.safe_load((REPO / "workflows" / "envs" / "cellvae.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch==2.13.0" in pip
    assert "../..[samples,slurm]" in pip  # this checkout, not an index
    assert (REPO / "workflows" / "envs" / "../../pyproject.toml").is_file()


def test_install_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(CONTAINERS / "install.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_cpu_install_steps_give_a_working_cellvae_in_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {**os.environ, "PYTHON": str(python), "TORCH_INDEX": ""}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["bash", str(CONTAINERS / "install.sh"), "cpu", str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cellvae" in done.stdout.splitlines()[-1]  # `cellvae --version` ran
    for command in (["cellvae", "--version"], ["snakemake", "--version"]):
        run = subprocess.run(
            [str(venv / "bin" / command[0]), *command[1:]], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
    check = "import cellvae.training.module, snakemake_executor_plugin_slurm, stardist"
    assert subprocess.run([str(python), "-c", check], cwd=tmp_path).returncode == 0
