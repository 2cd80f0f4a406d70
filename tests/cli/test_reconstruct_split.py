"""`cellvae reconstruct` split into parts, interrupted, refused: one line, nothing half-written."""

import errno

import numpy as np
import pytest

from cellvae.cli import main
from cellvae.inference.partial import BlockRecord
from cellvae.io.atomic import output_lock
from cellvae.io.omezarr import open_image
from tests.inference.helpers import save_checkpoint, write_test_image


@pytest.fixture
def argv(tmp_path, rng):
    data = rng.integers(0, 255, (40, 70), dtype=np.uint8)
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    image = write_test_image(tmp_path / "i.zarr", data, "yx")

    def make(out):
        return ["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out), "--no-progress"]

    return make


def _one_line(capsys, match):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err, err
    return err


def test_prepare_parts_finalize_equal_a_plain_run(tmp_path, argv, capsys):
    plain, split = tmp_path / "plain.zarr", tmp_path / "split.zarr"
    block = ["--block", "32"]  # 40 x 70 -> 2 x 3 = 6 blocks
    assert main(argv(plain) + block) == 0
    assert main(argv(split) + block + ["--prepare"]) == 0
    assert main(argv(split) + block + ["--part", "2/3"]) == 0
    capsys.readouterr()
    assert main(argv(split) + block + ["--finalize"]) == 1
    err = _one_line(capsys, "4 of 6 blocks are not written")
    assert "--part 1/3, --part 3/3" in err and not split.exists()
    for part in ("3/3", "1/3"):
        assert main(argv(split) + block + ["--part", part]) == 0
    assert main(argv(split) + block + ["--finalize"]) == 0
    np.testing.assert_array_equal(open_image(split).array[...], open_image(plain).array[...])


def test_split_flags_exclude_each_other(tmp_path, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv(tmp_path / "r.zarr"), "--prepare", "--finalize"])
    assert exit_.value.code == 2


def test_ctrl_c_says_how_many_blocks_were_kept(tmp_path, argv, capsys, monkeypatch):
    mark = BlockRecord.mark

    def mark_then_stop(record, block):
        mark(record, block)
        raise KeyboardInterrupt

    monkeypatch.setattr(BlockRecord, "mark", mark_then_stop)
    out = tmp_path / "r.zarr"
    assert main([*argv(out), "--block", "32"]) == 130
    _one_line(capsys, "kept 1 of 6 blocks")
    monkeypatch.setattr(BlockRecord, "mark", mark)
    assert main([*argv(out), "--block", "32"]) == 0
    assert "5 blocks written, 1 resumed" in capsys.readouterr().out


def test_read_only_output_folder_is_refused_before_any_work(tmp_path, argv, capsys, monkeypatch):
    import cellvae.io.atomic as atomic
    import cellvae.training.checkpoint as checkpoint

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def no_work(path):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(checkpoint, "load_vae", no_work)
    out = tmp_path / "r.zarr"
    assert main(argv(out)) == 1
    _one_line(capsys, "Read-only file system")
    assert not list(tmp_path.glob("r.zarr*"))


@pytest.mark.parametrize("stage", [[], ["--prepare"], ["--finalize"]])
def test_a_second_writer_gets_one_line_and_changes_nothing(
    tmp_path, argv, capsys, stage, monkeypatch
):
    import cellvae.training.checkpoint as checkpoint

    def no_work(path):
        raise AssertionError("the model was loaded before the lock was claimed")

    monkeypatch.setattr(checkpoint, "load_vae", no_work)
    out = tmp_path / "r.zarr"
    with output_lock(out):
        assert main(argv(out) + stage) == 75
        _one_line(capsys, "is being written by")
    assert not list(tmp_path.glob("r.zarr*"))
