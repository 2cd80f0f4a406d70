"""``cellvae reconstruct`` end to end, and its refusals: one line, non-zero, nothing written."""

import numpy as np
import pytest
import torch

from cellvae.cli import main
from cellvae.io.omezarr import open_image
from tests.inference.helpers import save_checkpoint, write_test_image


@pytest.fixture
def files(tmp_path, rng):
    data = rng.integers(0, 255, (36, 40), dtype=np.uint8)
    return save_checkpoint(tmp_path / "m.ckpt"), write_test_image(tmp_path / "i.zarr", data, "yx")


def _refused(capsys, argv, match, out):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and match in err, err
    assert "Traceback" not in err
    assert not out.with_name(out.name + ".partial").exists()


def test_reconstruct_writes_an_image_like_the_input(tmp_path, files, capsys):
    ckpt, image = files
    out = tmp_path / "r.zarr"
    assert (
        main(["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out), "--no-progress"]) == 0
    )
    result = open_image(out)
    assert result.shape == (36, 40) and result.axes == "yx" and result.dtype == np.float32


def test_corrupt_checkpoint(tmp_path, files, capsys):
    _, image = files
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    out = tmp_path / "r.zarr"
    _refused(
        capsys, ["reconstruct", str(image), "--ckpt", str(bad), "-o", str(out)], "bad.ckpt", out
    )
    assert not out.exists()


def test_checkpoint_of_another_model(tmp_path, files, capsys):
    _, image = files
    other = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"lr": 1.0}, "state_dict": {"net.w": torch.zeros(2)}}, other)
    out = tmp_path / "r.zarr"
    _refused(
        capsys,
        ["reconstruct", str(image), "--ckpt", str(other), "-o", str(out)],
        "another model type",
        out,
    )


def test_existing_output_without_overwrite(tmp_path, files, capsys):
    ckpt, image = files
    out = tmp_path / "r.zarr"
    out.mkdir()
    _refused(
        capsys, ["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out)], "--overwrite", out
    )
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("tile", "match"), [("2", "at least 4"), ("18", "downsampling 4")])
def test_tile_too_small_or_not_divisible(tmp_path, files, capsys, tile, match):
    ckpt, image = files
    out = tmp_path / "r.zarr"
    _refused(
        capsys,
        ["reconstruct", str(image), "--ckpt", str(ckpt), "-o", str(out), "--tile", tile],
        match,
        out,
    )
    assert not out.exists()
