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


def stack_info(path) -> dict:
    """The JSON description ``cellvae sample`` writes (axes, voxel size, units, intensity)."""
    with tifffile.TiffFile(path) as tif:
        return dict((tif.shaped_metadata or ({},))[0])


def _trained_on(tmp_path, data, axes, voxel, relative=False, **overrides):
    """A checkpoint that records ``data`` (ingested with ``voxel`` µm) as its training image."""
    import torch

    from cellvae.io.omezarr import write_image
    from cellvae.io.stats import intensity_stats

    image = tmp_path / "data" / "train.ome.zarr"
    image.parent.mkdir()
    spatial = {a: v for a, v in zip(axes, voxel)}
    units = {a: "micrometer" for a in spatial}
    write_image(image, data, axes, spatial, units=units, stats=intensity_stats(data, axes))
    ckpt = save_checkpoint(tmp_path / "runs" / "m.ckpt", **overrides)
    raw = torch.load(ckpt, weights_only=True)
    recorded = "data/train.ome.zarr" if relative else str(image)  # as typed where fit ran
    raw["datamodule_hyper_parameters"] = {
        "paths": [recorded],
        "low_percentile": 0.1,
        "high_percentile": 99.9,
        "channels": None,
    }
    torch.save(raw, ckpt)
    return ckpt, image


@pytest.mark.parametrize("relative", [False, True])
def test_samples_are_written_in_the_training_data_units_and_voxel_size(tmp_path, relative):
    from cellvae.io.omezarr import open_image
    from cellvae.io.tiff import read_tiff_meta

    rng = np.random.default_rng(3)
    tomogram = rng.uniform(-0.25, 0.25, (64, 64)).astype(np.float32)  # spans ±0.25
    (tmp_path / "runs").mkdir()
    ckpt, image = _trained_on(tmp_path, tomogram, "yx", (0.65, 0.65), relative=relative)
    out = tmp_path / "s.tif"
    assert main(["sample", "--ckpt", str(ckpt), "-n", "6", "-o", str(out)]) == 0
    stack = tifffile.imread(out)
    stats = open_image(image).stats["channels"][0]["percentiles"]
    lo, hi = stats["0.1"], stats["99.9"]
    assert -0.26 < lo < -0.24 and 0.24 < hi < 0.26
    assert lo - 1e-6 <= stack.min() and stack.max() <= hi + 1e-6  # not 96..127 model levels
    assert stack.max() - stack.min() > 0.01 * (hi - lo)
    meta = read_tiff_meta(out)
    assert meta.voxel_size["y"] == pytest.approx(0.65) and meta.voxel_size["x"] == pytest.approx(
        0.65
    )
    info = stack_info(out)
    assert info["voxel_size"] == {"y": 0.65, "x": 0.65}
    assert info["units"] == {"y": "micrometer", "x": "micrometer"}
    assert info["intensity"]["lo"] == [pytest.approx(lo)] and info["intensity"]["hi"] == [
        pytest.approx(hi)
    ]


def test_3d_prototype_records_the_z_voxel_size(tmp_path):
    rng = np.random.default_rng(4)
    volume = rng.integers(100, 900, (16, 32, 32)).astype(np.uint16)
    (tmp_path / "runs").mkdir()
    ckpt, _ = _trained_on(tmp_path, volume, "zyx", (2.2, 0.65, 0.65), ndim=3, patch_size=8)
    out = tmp_path / "p.tif"
    assert main(["sample", "--ckpt", str(ckpt), "--prototype", "-o", str(out)]) == 0
    stack = tifffile.imread(out)
    assert stack.shape == (1, 8, 8, 8) and 100 <= stack.min() and stack.max() <= 900
    assert stack_info(out)["voxel_size"] == {"z": 2.2, "y": 0.65, "x": 0.65}


def test_without_its_training_image_the_model_levels_are_written_and_said(tmp_path, ckpt, capsys):
    out = tmp_path / "s.tif"
    assert main(["sample", "--ckpt", str(ckpt), "-n", "2", "-o", str(out)]) == 0
    assert "model levels 0..255 (training image not found)" in capsys.readouterr().out
    assert stack_info(out)["intensity"]["source"].startswith("model levels")
