"""``cellvae workflow init DIR``: a runnable copy of the shipped Snakemake workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellvae.cli import main
from cellvae.cli.workflow import IGNORED

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file below ``root`` except run caches."""
    skip = {"__pycache__", ".snakemake"}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(root).parts) and p.suffix != ".pyc"
    }


def test_init_copies_every_workflow_file_and_keeps_scripts_executable(tmp_path, capsys):
    assert main(["workflow", "init", str(tmp_path / "project")]) == 0
    copied = tmp_path / "project" / "workflows"
    assert _files(copied) == _files(WORKFLOWS)
    assert {"Snakefile", "config/config.yaml", "profiles/local/config.yaml"} <= set(_files(copied))
    assert os.access(copied / "hpc" / "local_cluster.sh", os.X_OK)
    out = capsys.readouterr().out
    assert f"cd {tmp_path / 'project'}" in out
    assert "snakemake -s workflows/Snakefile --profile workflows/profiles/local" in out
    assert set(IGNORED) == {"__pycache__", "*.pyc", ".snakemake"}


def test_init_refuses_an_existing_copy_unless_overwrite(tmp_path, capsys):
    assert main(["workflow", "init", str(tmp_path)]) == 0
    config = tmp_path / "workflows" / "config" / "config.yaml"
    config.write_text("edited")
    capsys.readouterr()
    assert main(["workflow", "init", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output exists; pass --overwrite" in err
    assert config.read_text() == "edited"
    assert main(["workflow", "init", str(tmp_path), "--overwrite"]) == 0
    assert config.read_bytes() == (WORKFLOWS / "config" / "config.yaml").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workflows"]


def test_init_into_a_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["workflow", "init", str(tmp_path / "file" / "sub")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot create the folder" in err


def test_initialised_workflow_dry_runs_from_its_folder_with_shipped_presets(tmp_path):
    pytest.importorskip("snakemake", reason="needs the workflows extra (snakemake)")
    assert main(["workflow", "init", str(tmp_path)]) == 0
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    argv = [sys.executable, "-m", "snakemake", "-s", "workflows/Snakefile", "-n"]
    done = subprocess.run(
        [*argv, "--profile", "workflows/profiles/local"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert 'cellvae fit --preset 2d_hier_dlogistic "--data.paths=[$data]"' in done.stdout
    assert "data=runs/demo/" in done.stdout  # the shipped config's outdir, from its folder
