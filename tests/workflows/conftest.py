"""Fixtures for the workflow and SLURM tests: a tiny generated image, its workflow config,
the environment `cellvae` runs in, and a real one-node SLURM cluster (root on Debian only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflows" / "Snakefile"
CLUSTER_SCRIPT = REPO / "workflows" / "hpc" / "local_cluster.sh"

#: fit overrides that make the 2D preset tiny: a few seconds of training on one core.
TINY_FIT = {
    "trainer.max_steps": 6,
    "trainer.val_check_interval": 3,
    "trainer.limit_val_batches": 1,
    "trainer.accelerator": "cpu",
    "data.patch_size": [32, 32],
    "data.batch_size": 2,
    "data.patches_per_epoch": 16,
    "model.widths": [4, 8],
    "model.latent_channels": 2,
    "model.iwae_samples": 2,
}


@pytest.fixture(scope="session")
def cellvae_env() -> dict[str, str]:
    """The environment of workflow jobs: this interpreter's `cellvae`, this checkout first."""
    pytest.importorskip("snakemake", reason="needs the workflows extra (snakemake)")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory) -> tuple[Path, Path]:
    """A 96 x 96 synthetic mitochondria TIFF and its instance labels (8 networks)."""
    import tifffile

    from cellvae.data.synthetic import mitochondria

    folder = tmp_path_factory.mktemp("tiny_image")
    synth = mitochondria((96, 96), seed=0, n_tubules=8)
    tifffile.imwrite(folder / "image.tif", synth.image)
    tifffile.imwrite(folder / "labels.tif", synth.labels.astype(np.uint16))
    return folder / "image.tif", folder / "labels.tif"


def write_config(
    path: Path,
    outdir: Path,
    image: tuple[Path, Path],
    parts: int = 1,
    embed_args: tuple[str, ...] = ("--finetune", "2"),
) -> Path:
    """A workflow config for the tiny image and the tiny 2D preset.

    Reconstruction blocks of 32 px make 9 blocks of the 96 x 96 image, so 3 parts get 3 each.
    ``embed`` fine-tunes 2 updates by default (as the shipped config does, with 600).
    """
    config = {
        "outdir": str(outdir),
        "images": {"tiny": {"path": str(image[0]), "axes": "YX", "labels": str(image[1])}},
        "presets": {
            "small": {"config": "configs/2d_hier_dlogistic.yaml", "overrides": dict(TINY_FIT)}
        },
        "reconstruct": {"parts": parts, "args": ["--block", "32"]},
        "embed": {"args": list(embed_args)},
        "sample": {"n": 4},
        "resources": {"default": {"threads": 1, "mem_mb": 1000, "runtime": 10}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `snakemake -s workflows/Snakefile ARGS` from the repository root."""
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> dict[str, str]:
    """A real one-node SLURM cluster (workflows/hpc/local_cluster.sh), stopped afterwards.

    Only where the tests run as root on Debian/Ubuntu (it may apt-get install slurm-wlm and
    munge); elsewhere the SLURM tests skip with the reason.
    """
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root on Linux")
    if not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("no slurm-wlm and no apt-get to install it (not Debian/Ubuntu)")
    folder = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        if start.returncode != 0:
            logs = "".join(p.read_text()[-500:] for p in folder.glob("*.log"))
            pytest.skip(f"local SLURM did not start: {start.stderr.strip()[-300:]} {logs}")
        yield {"SLURM_CONF": str(folder / "slurm.conf"), "folder": str(folder)}
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(folder)], timeout=120)
