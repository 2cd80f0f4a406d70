"""What the wheel and sdist carry, and the README's commands run from the built wheel alone.

The slow test builds the wheel from a copy of the sources, installs it into a fresh virtual
environment and runs ``cellvae`` from a folder outside the checkout. The dependencies are
not installed again (torch alone is hundreds of MB): the new environment reads them from
this one's site-packages through a ``.pth`` line, which adds that folder to ``sys.path``
after the environment's own, without running its ``.pth`` files (so the editable install
of this checkout stays out). cellvae itself therefore comes from the wheel; the test checks.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: data-only packages that package-dir maps onto top-level folders of the repository
DATA_PACKAGES = {"cellvae.presets": "configs", "cellvae.workflow_files": "workflows"}
#: what a copy of the sources needs to build (tests and docs are not shipped)
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "cellvae", "configs", "workflows")
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")


def _shipped(folder: str) -> set[str]:
    """Relative paths of the files below a top-level folder that the wheel must carry."""
    root = REPO / folder
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".snakemake" not in p.parts
    }


def test_every_cellvae_package_is_listed_for_the_wheel():
    from setuptools import find_packages

    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set(find_packages(where=str(REPO), include=["cellvae", "cellvae.*"]))
    assert listed - set(DATA_PACKAGES) == found, "add new subpackages to [tool.setuptools]"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == DATA_PACKAGES


def test_licence_is_bsd3_of_the_cellvae_developers():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, cellvae developers" in text
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_no_wheel_is_committed():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "*.whl"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", "x.whl"], cwd=REPO)
    assert ignored.returncode == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and sdist built from a copy of the sources (this checkout stays clean)."""
    pytest.importorskip("setuptools", reason="builds the wheel with setuptools")
    folder = tmp_path_factory.mktemp("build")
    source = folder / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=CACHES)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    script = (
        "import sys\nfrom setuptools import build_meta as b\n"
        "out = sys.argv[1]\nb.build_wheel(out)\nb.build_sdist(out)"  # b rewrites sys.argv
    )
    dist = folder / "dist"
    done = subprocess.run(
        [sys.executable, "-c", script, str(dist)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,), (sdist,) = dist.glob("cellvae-*.whl"), dist.glob("cellvae-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.mark.slow
def test_wheel_and_sdist_carry_the_licence_presets_and_workflow(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for package, folder in DATA_PACKAGES.items():
        inside = package.replace(".", "/")
        assert {f"{inside}/{f}" for f in _shipped(folder)} <= names, folder
    assert "cellvae/napari/napari.yaml" in names
    with tarfile.open(built["sdist"]) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    assert "LICENSE" in members
    assert {f"workflows/{f}" for f in _shipped("workflows")} <= members


def _venv_with_the_wheel(built: dict[str, Path], folder: Path) -> Path:
    """A fresh environment holding only the wheel; dependencies read from this one."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run([*install, "--no-deps", "--no-index", str(built["wheel"])], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "_cellvae_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    return venv


@pytest.mark.slow
def test_built_wheel_runs_the_readme_outside_the_checkout(built, tmp_path):
    if importlib.util.find_spec("pip") is None:
        pytest.skip("needs pip to install the wheel")
    venv = _venv_with_the_wheel(built, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"

    def run(*argv: str, cwd: Path = outside) -> str:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
        return done.stdout

    where = run("python", "-c", "import cellvae; print(cellvae.__file__)").strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's cellvae, not the checkout's

    assert "2d_hier_dlogistic" in run("cellvae", "presets")
    run("cellvae", "ingest", "--sample", "mitochondria_2d", "-o", "data/generated/mito2d.ome.zarr")
    run("cellvae", "fit", "--preset", "2d_hier_dlogistic", "--trainer.max_steps", "20")
    run_dir = outside / "runs" / "2d_hier_dlogistic" / "lightning_logs" / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    check = "import sys, torch; print(torch.load(sys.argv[1], weights_only=True)['global_step'])"
    assert run("python", "-c", check, str(run_dir / "checkpoints" / "last.ckpt")).strip() == "20"

    if importlib.util.find_spec("snakemake") is None:
        return  # without the workflows extra there is nothing to dry-run the workflow with
    run("cellvae", "workflow", "init", "project")
    plan = run(
        "python",
        "-m",
        "snakemake",
        "-s",
        "workflows/Snakefile",
        "--profile",
        "workflows/profiles/local",
        "-n",
        cwd=outside / "project",
    )
    assert "cellvae fit --preset 2d_hier_dlogistic" in plan
    assert "cellvae report" in plan  # the whole chain is planned
