"""Bad input paths are refused before torch and Lightning are imported, in well under 1 s.

Each case runs ``cellvae.cli.main`` in a fresh interpreter and reports the exit code, whether
torch or lightning got imported, and the process's CPU seconds (wall time is noise on a
shared machine; CPU time is what the start costs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellvae.cli.precheck import check_fit_arguments, check_inputs

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import json, resource, sys
from cellvae.cli import main
code = main(json.loads(sys.argv[1]))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "cpu": usage.ru_utime + usage.ru_stime,
                  "heavy": sorted(m for m in ("torch", "lightning") if m in sys.modules)}))
"""


def _run(argv: list[str], cwd: Path) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """An ingested image, a label TIFF, a text file posing as a checkpoint and a zip."""
    from cellvae.io.ingest import ingest

    folder = tmp_path_factory.mktemp("precheck")
    data = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    tifffile.imwrite(folder / "image.tif", data)
    tifffile.imwrite(folder / "labels.tif", (data // 256).astype(np.uint16))
    ingest(folder / "image.tif", folder / "image.zarr", axes="yx", progress=False)
    (folder / "text.ckpt").write_text("not a checkpoint")
    with zipfile.ZipFile(folder / "zip.ckpt", "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    (folder / "config.yaml").write_text("data:\n  paths: [missing.ome.zarr]\n")
    return {p.stem if p.suffix != ".zarr" else "zarr": p for p in folder.iterdir()}


CASES = {
    "reconstruct, no checkpoint": (
        ["reconstruct", "{zarr}", "--ckpt", "{dir}/none.ckpt", "-o", "{dir}/r.zarr"],
        "none.ckpt: checkpoint not found",
    ),
    "reconstruct, a text file as checkpoint": (
        ["reconstruct", "{zarr}", "--ckpt", "{text}", "-o", "{dir}/r.zarr"],
        "text.ckpt: not a readable checkpoint (not a PyTorch file, or a damaged one)",
    ),
    "reconstruct, no image": (
        ["reconstruct", "{dir}/none.zarr", "--ckpt", "{zip}", "-o", "{dir}/r.zarr"],
        "none.zarr: no such file or directory",
    ),
    "reconstruct, a TIFF as image": (
        ["reconstruct", "{image}", "--ckpt", "{zip}", "-o", "{dir}/r.zarr"],
        "image.tif: an image file, not OME-Zarr; convert it first with 'cellvae ingest",
    ),
    "embed, no labels": (
        ["embed", "{zarr}", "--ckpt", "{zip}", "--labels", "{dir}/none.tif", "-o", "{dir}/c.pq"],
        "none.tif: no such file or directory",
    ),
    "embed, bad label axes": (
        ["embed", "{zarr}", "--ckpt", "{zip}", "--labels", "{labels}", "--axes", "QX", "-o", "c"],
        "labels.tif: axes 'QX' must be distinct letters of 'tczyx' including y and x",
    ),
    "embed, no checkpoint": (
        ["embed", "{zarr}", "--ckpt", "{dir}/none.ckpt", "--labels", "{labels}", "-o", "c.pq"],
        "none.ckpt: checkpoint not found",
    ),
    "blur, no reconstruction": (
        ["blur", "{zarr}", "{dir}/none.zarr", "-o", "{dir}/b.zarr", "--summary", "{dir}/b.json"],
        "none.zarr: no such file or directory",
    ),
    "sample, no checkpoint": (
        ["sample", "--ckpt", "{dir}/none.ckpt", "-o", "{dir}/s.tif"],
        "none.ckpt: checkpoint not found",
    ),
    "sample, no image": (
        ["sample", "--ckpt", "{zip}", "--image", "{dir}/none.zarr", "-o", "{dir}/s.tif"],
        "none.zarr: no such file or directory",
    ),
    "fit, no config file": (
        ["fit", "--config", "{dir}/none.yaml"],
        "--config: {dir}/none.yaml: no such file",
    ),
    "fit, a text file to resume from": (
        ["fit", "--preset", "2d_hier_dlogistic", "--ckpt_path", "{text}"],
        "text.ckpt: not a readable checkpoint",
    ),
    "fit, a preset before its image is ingested": (
        ["fit", "--preset", "2d_hier_dlogistic"],
        "paths: data/generated/mito2d.ome.zarr does not exist; make it with 'cellvae ingest",
    ),
    "fit, the image of a config file": (
        ["fit", "--config", "{config}", "--trainer.max_steps=2"],
        "paths: missing.ome.zarr does not exist",
    ),
    "fit, the image on the command line wins": (
        ["fit", "--config", "{config}", "--data.paths=[{dir}/none.zarr]"],
        "paths: {dir}/none.zarr does not exist",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refusal_comes_before_torch_in_one_line(files, tmp_path, case):
    argv, message = CASES[case]
    names = {k: str(v) for k, v in files.items()} | {"dir": str(files["zip"].parent)}
    result, err = _run([a.format(**names) for a in argv], tmp_path)
    assert result["code"] != 0 and result["heavy"] == [], (result, err)
    assert len(err.splitlines()) == 1 and message.format(**names) in err, err
    assert result["cpu"] < 3, result  # 0.05 s for a missing path, 0.5-1.5 s to open an image


def test_missing_paths_cost_a_fraction_of_a_second(tmp_path):
    """The figure of issue 23: a bad path is refused in < 1 s (here in CPU seconds)."""
    for argv in (
        ["reconstruct", "x.zarr", "--ckpt", "none.ckpt", "-o", "r.zarr"],
        ["embed", "x.zarr", "--ckpt", "none.ckpt", "--labels", "l.tif", "-o", "c.parquet"],
        ["fit", "--config", "none.yaml"],
    ):
        result, err = _run(argv, tmp_path)
        assert result["code"] != 0 and result["cpu"] < 1.0, (argv, result, err)


def test_remote_addresses_are_left_to_the_verb():
    args = argparse.Namespace(
        input="https://example.org/image.ome.zarr",
        labels="s3://bucket/labels.ome.zarr",
        ckpt="https://example.org/model.ckpt",
        axes=None,
    )
    check_inputs("embed", args)  # no existence check, no network access
    check_fit_arguments(["--data.paths=[s3://bucket/a.zarr]", "--ckpt_path", "https://x/m.ckpt"])


def test_options_that_read_nothing_are_not_refused(files):
    check_fit_arguments(["--config", str(files["config"]), "--print_config"])
    check_fit_arguments(["--config", "{trainer: {max_steps: 2}}", "--ckpt_path", "last"])


def test_ckpt_path_auto_is_resolved_by_fit_not_refused():
    # the workflow's resumable fit passes --ckpt_path auto on its first run, with no checkpoint
    check_fit_arguments(["--config", "{trainer: {max_steps: 2}}", "--ckpt_path", "auto"])
    check_fit_arguments(["--config", "{trainer: {max_steps: 2}}", "--ckpt_path=auto"])
