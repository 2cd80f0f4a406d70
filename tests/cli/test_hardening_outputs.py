"""Every verb against a read-only output and against a concurrent writer of its output.

Expected each time: a non-zero exit, one ``cellvae VERB: error:`` line naming the output, no
traceback, and nothing written (no output, no ``.partial``, the other writer's lock intact).
The read-only case runs the verbs in a subprocess whose output folder is a read-only bind
mount (root ignores permission bits, so ``chmod`` alone would prove nothing); as a normal
user the folder is made read-only with ``chmod`` instead.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellvae.cli import main
from tests.inference.helpers import save_checkpoint, write_test_image

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = [
    "--model.arch=flat",
    "--model.likelihood=gaussian",
    "--model.widths=[4, 8]",
    "--model.latent_dim=2",
]
#: verbs whose guard lives in another helper's branch (``recon``: cellvae/inference)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Inputs: image (Zarr, TIFF), labels, a reconstruction, a checkpoint."""
    import tifffile

    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 96), dtype=np.uint8)
    labels = np.zeros((96, 96), np.uint16)
    labels[10:20, 10:20], labels[30:40, 25:35] = 1, 2
    write_test_image(folder / "img.zarr", image, "yx")
    write_test_image(folder / "lab.zarr", labels, "yx")
    write_test_image(folder / "rec.zarr", image.astype(np.float32), "yx")
    tifffile.imwrite(folder / "img.tif", image)
    save_checkpoint(folder / "m.ckpt")
    return folder


def _lightning(verb: str, inp: Path, root: Path, *extra: str) -> list[str]:
    return [
        verb,
        f"--data.paths=[{inp / 'img.zarr'}]",
        "--data.patch_size=[16, 16]",
        "--data.batch_size=2",
        "--data.patches_per_epoch=4",
        "--data.val_fraction=0.5",
        *TINY_MODEL,
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=1",
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def verb_cases(inp: Path, out: Path) -> dict[str, tuple[list[str], Path]]:
    """verb -> (argv, the output it claims first); outputs all go into ``out``."""
    ckpt = str(inp / "m.ckpt")
    image, run = str(inp / "img.zarr"), out / "run"
    recon = ["reconstruct", image, "--ckpt", ckpt, "-o", str(out / "r.zarr"), "--no-progress"]
    embed = ["embed", image, "--ckpt", ckpt, "--labels", str(inp / "lab.zarr"), "--no-progress"]
    blur = ["blur", image, str(inp / "rec.zarr"), "-o", str(out / "b.zarr"), "--window", "16"]
    return {
        "ingest": (["ingest", str(inp / "img.tif"), "-o", str(out / "i.zarr")], out / "i.zarr"),
        "fit": (_lightning("fit", inp, run), run / ".cellvae"),
        "validate": (_lightning("validate", inp, run, f"--ckpt_path={ckpt}"), run / ".cellvae"),
        "test": (_lightning("test", inp, run, f"--ckpt_path={ckpt}"), run / ".cellvae"),
        "reconstruct": (recon, out / "r.zarr"),
        "embed": ([*embed, "-o", str(out / "c.parquet")], out / "c.parquet"),
        "blur": ([*blur, "--summary", str(out / "b.json")], out / "b.json"),
        "sample": (["sample", "--ckpt", ckpt, "-n", "2", "-o", str(out / "s.tif")], out / "s.tif"),
        "report": (["report", str(out)], out / "report.md"),
        "experiment": (["experiment", "pca", "-o", str(out / "exp")], out / "exp" / ".cellvae"),
    }


VERBS = list(verb_cases(Path("i"), Path("o")))


def _one_clear_line(verb: str, code: int, err: str, claimed: Path, folder: Path) -> None:
    """One error line whose subject is the output (not an input) and that names ``folder``."""
    assert code != 0, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    subject = claimed.parent if claimed.name == ".cellvae" else claimed
    assert errors[0].startswith(f"cellvae {verb}: error: {subject}"), err
    assert str(folder) in errors[0], err


@pytest.fixture
def no_work(monkeypatch):
    """Make the first piece of real work of every verb fail the test: refusals come first."""

    def started(*args, **kwargs):
        raise AssertionError("the verb started working before it claimed its output")

    import lightning.pytorch as pl

    for target in (
        "cellvae.training.checkpoint.load_vae",
        "cellvae.io.ingest.store_dask",
        "cellvae.metrics.sharpness.blur_map",
        "cellvae.experiments._report.run_all",
        "cellvae.report._training",
    ):
        monkeypatch.setattr(target, started)
    for method in ("fit", "validate", "test"):  # same signature: LightningCLI reads it
        monkeypatch.setattr(
            pl.Trainer, method, functools.wraps(getattr(pl.Trainer, method))(started)
        )


# --- a concurrent writer holds the output --------------------------------------------------


@pytest.mark.parametrize("verb", VERBS)
def test_verb_refuses_an_output_another_process_is_writing(verb, inputs, tmp_path, capsys, no_work):
    argv, claimed = verb_cases(inputs, tmp_path)[verb]
    claimed.parent.mkdir(parents=True, exist_ok=True)
    lock = claimed.with_name(claimed.name + ".lock")
    holder = f"{os.getppid()} {socket.gethostname()}\n"  # a live process on this host
    lock.write_text(holder)
    before = sorted(p.name for p in tmp_path.rglob("*"))

    code = main(argv)

    err = capsys.readouterr().err
    _one_clear_line(verb, code, err, claimed, claimed)
    assert "is being written by" in err
    assert code == 75  # EX_TEMPFAIL: try again later
    assert lock.read_text() == holder  # the other writer's lock is left alone
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


# --- the output folder is read-only ---------------------------------------------------------

_RUNNER = """
import contextlib, io, json, sys
from cellvae.cli import main
results = {}
for verb, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(argv)
    except BaseException as exc:  # an escaped exception is what the test must not see
        code, err = -1, io.StringIO(f"Traceback: {type(exc).__name__}: {exc}")
    results[verb] = [code, err.getvalue()]
print(json.dumps(results))
"""


def _read_only_command(folder: Path) -> list[str] | None:
    """How to run a command with ``folder`` read-only, or None where this machine cannot."""
    if os.geteuid() != 0:
        return []  # chmod is enough for a normal user
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
         f"mount -o remount,ro,bind {folder} {folder} && ! touch {folder}/probe"],
        capture_output=True,
    )  # fmt: skip
    if probe.returncode != 0:
        return None
    mount = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder}"
    return ["unshare", "-m", "sh", "-c", mount + ' && exec "$0" "$@"']


@pytest.fixture(scope="module")
def read_only_results(inputs, tmp_path_factory) -> tuple[Path, dict]:
    """Run every verb once with its output folder read-only; ``(folder, verb -> [code, err])``."""
    folder = tmp_path_factory.mktemp("read_only")
    (folder / "blur.json").write_text("{}")  # something for the report to find
    prefix = _read_only_command(folder)
    if prefix is None:
        pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
    cases = {verb: argv for verb, (argv, _) in verb_cases(inputs, folder).items()}
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if not prefix:
        folder.chmod(0o555)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", _RUNNER, json.dumps(cases)],
            capture_output=True,
            text=True,
            env=env,
            cwd=inputs,
            timeout=600,
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("verb", VERBS)
def test_verb_names_a_read_only_output_in_one_line(verb, read_only_results):
    folder, results = read_only_results
    code, err = results[verb]
    _one_clear_line(verb, code, err, verb_cases(Path("in"), folder)[verb][1], folder)
    assert sorted(p.name for p in folder.iterdir()) == ["blur.json"]  # nothing written
