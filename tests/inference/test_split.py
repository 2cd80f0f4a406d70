"""Reconstruction split into parts: same output as one run, parts rerun alone, safe starts."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.inference import reconstruct as rec
from cellvae.inference.partial import DONE_DIR, BlockRecord, parse_part, part_blocks, part_lock
from cellvae.io.atomic import OutputBusyError
from cellvae.io.omezarr import open_image
from tests.inference.helpers import save_checkpoint, write_test_image

KW = dict(tile=16, overlap=4, block=32, progress=False)  # 80 x 100 -> 3 x 4 = 12 blocks


@pytest.fixture
def files(tmp_path, rng):
    y, x = np.mgrid[:80, :100]
    data = (120 + 90 * np.sin(y / 6) * np.cos(x / 9) + rng.normal(0, 8, y.shape)).clip(0, 255)
    image = write_test_image(tmp_path / "in.zarr", data.astype(np.uint8), "yx")
    return save_checkpoint(tmp_path / "m.ckpt"), image


@pytest.fixture
def whole(tmp_path, files):
    """The same image reconstructed in one plain run."""
    out = tmp_path / "whole.zarr"
    rec.reconstruct_image(*files, out, **KW)
    return open_image(out).array[...]


def test_parts_are_disjoint_and_cover_every_block():
    shares = [set(part_blocks(12, i, 5)) for i in range(1, 6)]
    assert set().union(*shares) == set(range(12)) and sum(map(len, shares)) == 12


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "2/0"])
def test_bad_part_is_refused(text):
    with pytest.raises(CellvaeError, match="--part"):
        parse_part(text)


def test_three_parts_give_the_one_run_output_voxel_for_voxel(tmp_path, files, whole):
    out = tmp_path / "split.zarr"
    rec.reconstruct_image(*files, out, stage="prepare", **KW)
    rec.reconstruct_image(*files, out, stage="prepare", **KW)  # idempotent
    written = []
    for i in (3, 1, 2):
        stats = rec.reconstruct_image(*files, out, stage="part", part=(i, 3), **KW)
        written.append(set(stats.written))
        assert not out.exists()
    assert all(a.isdisjoint(b) for a in written for b in written if a is not b)
    rec.reconstruct_image(*files, out, stage="finalize", **KW)
    np.testing.assert_array_equal(open_image(out).array[...], whole)
    assert not (out / DONE_DIR).exists() and not rec.temporary_path(out).exists()
    assert not list(tmp_path.glob("*.lock"))


def test_finalize_names_the_missing_parts(tmp_path, files):
    out = tmp_path / "split.zarr"
    for i in (1, 3):
        rec.reconstruct_image(*files, out, stage="part", part=(i, 3), **KW)
    with pytest.raises(CellvaeError) as err:
        rec.reconstruct_image(*files, out, stage="finalize", **KW)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "--part 2/3" in message and "1/3" not in message and "3/3" not in message
    assert "4 of 12 blocks" in message and not out.exists()


def test_same_part_cannot_run_twice_at_once_but_others_can(tmp_path, files):
    out = tmp_path / "split.zarr"
    with part_lock(out, 2, 2):
        with pytest.raises(OutputBusyError, match="part-2-of-2"):
            rec.reconstruct_image(*files, out, stage="part", part=(2, 2), **KW)
        rec.reconstruct_image(*files, out, stage="part", part=(1, 2), **KW)
        with pytest.raises(OutputBusyError):  # finalize waits for live parts
            rec.reconstruct_image(*files, out, stage="finalize", **KW)
    assert BlockRecord(rec.temporary_path(out)).done() == set(part_blocks(12, 1, 2))


def test_parts_started_together_share_one_prepared_output(tmp_path, files, whole):
    out = tmp_path / "split.zarr"
    errors = []

    def run(i):
        try:
            rec.reconstruct_image(*files, out, stage="part", part=(i, 3), **KW)
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rec.reconstruct_image(*files, out, stage="finalize", **KW)
    np.testing.assert_array_equal(open_image(out).array[...], whole)


def test_a_part_never_discards_a_store_of_another_layout(tmp_path, files):
    out = tmp_path / "split.zarr"
    rec.reconstruct_image(*files, out, stage="part", part=(1, 2), **KW)
    with pytest.raises(CellvaeError, match="other settings"):
        rec.reconstruct_image(*files, out, stage="part", part=(2, 2), **(KW | {"block": 16}))
    assert BlockRecord(rec.temporary_path(out)).done() == set(part_blocks(12, 1, 2))


def _retrain(ckpt: Path) -> None:
    """New weights behind the same checkpoint path, as a workflow's rerun of `fit` leaves."""
    import torch

    saved = torch.load(ckpt, weights_only=True)
    for value in saved["state_dict"].values():
        if value.is_floating_point():
            value += 0.05 * torch.randn(value.shape, generator=torch.Generator().manual_seed(1))
    torch.save(saved, ckpt)


def test_a_part_rewrites_blocks_of_another_model_at_the_same_path_loudly(tmp_path, files):
    ckpt, image = files
    out = tmp_path / "split.zarr"
    for i in (1, 3):  # an interrupted split run with the old model
        rec.reconstruct_image(ckpt, image, out, stage="part", part=(i, 3), **KW)
    _retrain(ckpt)
    whole = tmp_path / "whole.zarr"
    rec.reconstruct_image(ckpt, image, whole, **KW)
    with pytest.raises(CellvaeError, match=r"12 of 12 blocks .*8 were written with another"):
        rec.reconstruct_image(ckpt, image, out, stage="finalize", **KW)
    with pytest.warns(UserWarning, match="4 finished block.*another checkpoint"):
        stats = rec.reconstruct_image(ckpt, image, out, stage="part", part=(1, 3), **KW)
    assert (stats.blocks_written, stats.blocks_skipped) == (4, 0)
    for i in (2, 3):
        rec.reconstruct_image(ckpt, image, out, stage="part", part=(i, 3), **KW)
    rec.reconstruct_image(ckpt, image, out, stage="finalize", **KW)
    np.testing.assert_array_equal(open_image(out).array[...], open_image(whole).array[...])


def test_a_changed_image_at_the_same_path_is_reconstructed_again(tmp_path, files):
    ckpt, image = files
    out = tmp_path / "split.zarr"
    rec.reconstruct_image(ckpt, image, out, stage="part", part=(1, 2), **KW)
    data = open_image(image).array[...]
    shutil.rmtree(image)
    write_test_image(image, (255 - data).astype(np.uint8), "yx")  # re-ingested, new content
    whole = tmp_path / "whole.zarr"
    rec.reconstruct_image(ckpt, image, whole, **KW)
    with pytest.warns(UserWarning, match="6 finished block"):
        rec.reconstruct_image(ckpt, image, out, stage="part", part=(1, 2), **KW)
    rec.reconstruct_image(ckpt, image, out, stage="part", part=(2, 2), **KW)
    rec.reconstruct_image(ckpt, image, out, stage="finalize", **KW)
    np.testing.assert_array_equal(open_image(out).array[...], open_image(whole).array[...])


def test_content_key_ignores_paths_but_not_weights_or_options(files):
    ckpt, _ = files
    base = dict(ckpt="/a", input="/b", ckpt_sha256="1", input_digest="2", tile=[16, 16])
    assert rec.content_key(base) == rec.content_key(base | {"ckpt": "/c", "input": "/d"})
    for change in ({"ckpt_sha256": "3"}, {"input_digest": "4"}, {"tile": [32, 32]}):
        assert rec.content_key(base) != rec.content_key(base | change)
    assert rec.file_sha256(ckpt) == hashlib.sha256(ckpt.read_bytes()).hexdigest()


_HANGING_PART = """
import sys, time
from cellvae.cli import main
from cellvae.inference.partial import BlockRecord
mark = BlockRecord.mark
def mark_then_hang(record, block):
    mark(record, block)
    time.sleep(600)  # killed here, after its first block
BlockRecord.mark = mark_then_hang
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_killed_part_rerun_alone_completes_the_output(tmp_path, files, whole):
    ckpt, image = files
    out = tmp_path / "split.zarr"
    argv = [str(image), "--ckpt", str(ckpt), "-o", str(out), "--tile", "16", "--overlap", "4"]
    argv += ["--block", "32", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]), OMP_NUM_THREADS="1")
    child = subprocess.Popen(
        [sys.executable, "-c", _HANGING_PART, "reconstruct", *argv, "--part", "2/2"], env=env
    )
    record = BlockRecord(rec.temporary_path(out))
    deadline = time.monotonic() + 120
    while not record.done() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(record.done()) == 1  # died mid-part, its lock left behind
    assert (tmp_path / "split.zarr.part-2-of-2.lock").exists()
    for i in (1, 2):  # the other part, and the dead one rerun alone
        rec.reconstruct_image(ckpt, image, out, stage="part", part=(i, 2), **KW)
    rec.reconstruct_image(ckpt, image, out, stage="finalize", **KW)
    np.testing.assert_array_equal(open_image(out).array[...], whole)


_STALLING_PART = """
import sys, time
from cellvae.cli import main
from cellvae.inference.model import Reconstructor
from cellvae.inference.partial import BlockRecord
mark, call, marked = BlockRecord.mark, Reconstructor.__call__, []
def mark_and_note(record, block):
    mark(record, block)
    marked.append(block)
def call_or_stall(self, raw):
    if marked:
        time.sleep(600)  # stopped here by SIGTERM, after its first block
    return call(self, raw)
BlockRecord.mark, Reconstructor.__call__ = mark_and_note, call_or_stall
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_keeps_finished_blocks_and_releases_the_part_lock(tmp_path, files):
    ckpt, image = files
    out = tmp_path / "split.zarr"
    argv = [str(image), "--ckpt", str(ckpt), "-o", str(out), "--tile", "16", "--overlap", "4"]
    argv += ["--block", "32", "--no-progress", "--part", "1/1", "--batch-size", "1"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]), OMP_NUM_THREADS="1")
    child = subprocess.Popen(
        [sys.executable, "-c", _STALLING_PART, "reconstruct", *argv],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = BlockRecord(rec.temporary_path(out))
    deadline = time.monotonic() + 120
    while not record.done() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert f"kept {len(record.done())} of 12 blocks" in err and len(record.done()) >= 1
    assert not (tmp_path / "split.zarr.part-1-of-1.lock").exists()
