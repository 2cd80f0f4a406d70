"""``cellvae sample``: prior samples, prototype and interpolations as TIFF stacks."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellvae.cli import main
from tests.inference.helpers import save_checkpoint


@pytest.fixture
def ckpt(tmp_path):
    return save_checkpoint(tmp_path / "m.ckpt")


def test_sample_writes_n_planes_in_level_units(tmp_path, ckpt):
    out = tmp_path / "s.tif"
    assert main(["sample", "--ckpt", str(ckpt), "-n", "5", "-o", str(out)]) == 0
    stack = tifffile.imread(out)
    assert stack.shape == (5, 16, 16) and stack.dtype == np.float32
    assert np.all(np.isfinite(stack))


def test_prototype_is_one_plane_and_temperature_zero_equals_it(tmp_path, ckpt):
    proto, cold = tmp_path / "p.tif", tmp_path / "c.tif"
    assert main(["sample", "--ckpt", str(ckpt), "--prototype", "-o", str(proto)]) == 0
    assert (
        main(["sample", "--ckpt", str(ckpt), "-n", "2", "--temperature", "0", "-o", str(cold)]) == 0
    )
    p, c = tifffile.imread(proto), tifffile.imread(cold)
    assert p.shape == (1, 16, 16)
    np.testing.assert_allclose(c[0], p[0], atol=1e-4)
    np.testing.assert_allclose(c[1], p[0], atol=1e-4)


def test_interpolation_between_cells_starts_and_ends_at_their_codes(tmp_path, ckpt):
    table = pd.DataFrame(
        {
            "label": [4, 8],
            "z_mean_0": [1.0, -1.0],
            "z_mean_1": [0.0, 2.0],
            "z_mean_2": [0.5, 0.5],
            "z_mean_3": [0.0, 0.0],
        }
    )
    table.to_parquet(tmp_path / "cells.parquet")
    np.save(tmp_path / "a.npy", np.array([1.0, 0.0, 0.5, 0.0]))
    np.save(tmp_path / "b.npy", np.array([-1.0, 2.0, 0.5, 0.0]))
    by_cell, by_code = tmp_path / "i.tif", tmp_path / "k.tif"
    assert (
        main(
            [
                "sample",
                "--ckpt",
                str(ckpt),
                "--interpolate",
                "4",
                "8",
                "--embeddings",
                str(tmp_path / "cells.parquet"),
                "--steps",
                "5",
                "-o",
                str(by_cell),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                "--ckpt",
                str(ckpt),
                "--interpolate-codes",
                str(tmp_path / "a.npy"),
                str(tmp_path / "b.npy"),
                "--steps",
                "5",
                "-o",
                str(by_code),
            ]
        )
        == 0
    )
    a, b = tifffile.imread(by_cell), tifffile.imread(by_code)
    assert a.shape == (5, 16, 16)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[-1])


def test_unknown_label_is_refused(tmp_path, ckpt, capsys):
    pd.DataFrame({"label": [4], "z_mean_0": [1.0]}).to_parquet(tmp_path / "cells.parquet")
    out = tmp_path / "i.tif"
    assert (
        main(
            [
                "sample",
                "--ckpt",
                str(ckpt),
                "--interpolate",
                "4",
                "5",
                "--embeddings",
                str(tmp_path / "cells.parquet"),
                "-o",
                str(out),
            ]
        )
        != 0
    )
    assert "no cell with label 5" in capsys.readouterr().err and not out.exists()
