"""``cellvae blur``: map and summary on disk, clear refusals, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from cellvae.cli import main
from cellvae.io.omezarr import open_image, write_image


@pytest.fixture
def pair(rng, tmp_path):
    """An original 2D texture and a reconstruction blurred in its lower-left quadrant."""
    original = (ndimage.gaussian_filter(rng.normal(size=(128, 128)), 0.7) * 1000 + 2000).astype(
        np.uint16
    )
    recon = original.astype(np.float32)
    recon[64:, :64] = ndimage.gaussian_filter(recon, 2.0)[64:, :64]
    write_image(tmp_path / "orig.zarr", original, "yx", voxel_size={"y": 0.5, "x": 0.5})
    write_image(tmp_path / "recon.zarr", recon, "yx", voxel_size={"y": 0.5, "x": 0.5})
    return tmp_path / "orig.zarr", tmp_path / "recon.zarr"


def _run(tmp_path, original, recon, *extra: str) -> int:
    out, summary = tmp_path / "blur.zarr", tmp_path / "blur.json"
    return main(
        ["blur", str(original), str(recon), "-o", str(out), "--summary", str(summary), *extra]
    )


def test_blur_writes_an_aligned_map_and_a_summary(pair, tmp_path, capsys):
    assert _run(tmp_path, *pair, "--window", "16") == 0
    assert "global HF power ratio" in capsys.readouterr().out
    bmap = open_image(tmp_path / "blur.zarr")
    assert bmap.axes == "yx" and bmap.shape == (16, 16)
    assert bmap.voxel_size == {"y": 4.0, "x": 4.0}  # 0.5 um x stride 8: overlays the image
    ratio = np.asarray(bmap.array)
    assert ratio[9:, :7].max() < 0.1 and ratio[:7].min() > 0.95

    summary = json.loads((tmp_path / "blur.json").read_text())
    assert 0.6 < summary["global_hf_ratio"] < 0.85  # a quarter of the image lost its detail
    assert summary["cutoff_cycles_per_px"] == 0.125
    frc = summary["frc"]
    assert len(frc["frequencies"]) == len(frc["correlation"]) == 65
    assert frc["correlation"][1] > 0.9
    worst = summary["worst_regions"]
    assert len(worst) == 5
    assert all(r["start"][0] >= 56 and r["stop"][1] <= 72 for r in worst)


def test_tiff_inputs_are_accepted(pair, tmp_path):
    original, recon = (np.asarray(open_image(p).array) for p in pair)
    tifffile.imwrite(tmp_path / "o.tif", original)
    tifffile.imwrite(tmp_path / "r.tif", recon)
    assert _run(tmp_path, tmp_path / "o.tif", tmp_path / "r.tif", "--window", "16") == 0
    assert open_image(tmp_path / "blur.zarr").shape == (16, 16)


def test_3d_volume_gives_a_3d_or_planewise_map(rng, tmp_path):
    vol = ndimage.gaussian_filter(rng.normal(size=(16, 32, 32)), 0.7).astype(np.float32)
    write_image(tmp_path / "v.zarr", vol, "zyx")
    write_image(tmp_path / "w.zarr", ndimage.gaussian_filter(vol, 1.0), "zyx")
    assert _run(tmp_path, tmp_path / "v.zarr", tmp_path / "w.zarr", "--window", "8") == 0
    assert open_image(tmp_path / "blur.zarr").shape == (4, 8, 8)
    args = ("--window", "8", "--planewise", "--overwrite")
    assert _run(tmp_path, tmp_path / "v.zarr", tmp_path / "w.zarr", *args) == 0
    assert open_image(tmp_path / "blur.zarr").shape == (16, 8, 8)
    summary = json.loads((tmp_path / "blur.json").read_text())
    assert summary["analysed_axes"] == "yx" and summary["global_hf_ratio"] < 0.5


def test_different_shapes_are_one_line_errors_and_write_nothing(pair, tmp_path, rng, capsys):
    write_image(tmp_path / "small.zarr", rng.normal(size=(64, 64)).astype(np.float32), "yx")
    assert _run(tmp_path, pair[0], tmp_path / "small.zarr") == 1
    err = capsys.readouterr().err.strip()
    assert "differs from" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "blur.zarr").exists() and not (tmp_path / "blur.json").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_existing_outputs_need_overwrite(pair, tmp_path, capsys):
    (tmp_path / "blur.json").write_text("{}")
    assert _run(tmp_path, *pair, "--window", "16") == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "blur.json").read_text() == "{}"
    assert not (tmp_path / "blur.zarr").exists()
    assert _run(tmp_path, *pair, "--window", "16", "--overwrite") == 0
    assert "global_hf_ratio" in json.loads((tmp_path / "blur.json").read_text())


def test_window_larger_than_the_image_is_refused(pair, tmp_path, capsys):
    assert _run(tmp_path, *pair, "--window", "256") == 1
    assert "--window 256 is larger" in capsys.readouterr().err
