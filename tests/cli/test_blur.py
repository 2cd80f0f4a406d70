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
    out = capsys.readouterr().out
    assert "share of the original's resolvable structure kept: " in out
    assert "original resolves" in out and "reconstruction keeps" in out
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


@pytest.fixture(scope="module")
def mito(tmp_path_factory):
    """The synthetic mitochondria sample with its truth and camera, and a reconstruction that
    is the truth, blurred (sigma 1.5 px) in its right half."""
    folder = tmp_path_factory.mktemp("mito")
    image, truth = folder / "mito.ome.zarr", folder / "truth.ome.zarr"
    assert (
        main(["ingest", "--sample", "mitochondria_2d", "-o", str(image), "--truth-out", str(truth)])
        == 0
    )
    clean = np.asarray(open_image(truth).array)
    recon = clean.copy()
    recon[:, 256:] = ndimage.gaussian_filter(clean, 1.5)[:, 256:]
    write_image(folder / "recon.ome.zarr", recon, "yx")
    return image, truth, folder / "recon.ome.zarr"


def test_truth_gives_its_own_map_and_figures_and_the_camera_comes_from_metadata(
    mito, tmp_path, capsys
):
    image, truth, recon = mito
    assert _run(tmp_path, image, recon, "--truth", str(truth)) == 0
    out = capsys.readouterr().out
    assert "against the truth: share kept" in out and "(metadata)" in out
    summary = json.loads((tmp_path / "blur.json").read_text())
    camera = summary["camera"]
    assert camera["sources"] == {"gain": "metadata", "offset": "metadata", "read_noise": "metadata"}
    assert camera["gain"] == pytest.approx(0.8 * 255 / 210) and camera["fit"] is None
    assert camera["metadata_source"] == "mitochondria_2d: the synthetic generator's camera"
    noisy = np.asarray(open_image(tmp_path / "blur.zarr").array)
    clean = np.asarray(open_image(tmp_path / "blur_truth.zarr").array)
    assert noisy.shape == clean.shape == (32, 32)
    left, right = noisy[:, :15], noisy[:, 17:]
    assert np.nanmedian(left) >= 0.9 and np.nanmedian(right) <= 0.5
    assert np.isnan(noisy).mean() > 0.3  # background: no signal, not "all lost"
    assert all(r["centre"][1] >= 256 for r in summary["worst_regions"])
    assert {"share_kept", "signal_to_noise", "share_kept_against_truth"} <= set(
        summary["worst_regions"][0]
    )
    t = summary["truth"]
    assert t["path"] == str(truth) and t["blur_map"] == str(tmp_path / "blur_truth.zarr")
    assert t["map_spearman"] >= 0.8
    assert t["share_of_resolvable_structure_kept"] == pytest.approx(
        summary["share_of_resolvable_structure_kept"], abs=0.05
    )
    assert summary["resolution_sentence"].startswith("original resolves ")
    # pooled over the image, half the windows keep everything: at least half the power kept
    assert summary["reconstruction_keeps_px"] >= summary["original_resolves_px"] > 2
    assert t["reconstruction_keeps_px"] == pytest.approx(
        summary["reconstruction_keeps_px"], rel=0.1
    )


def test_camera_options_override_metadata_and_the_rest_is_estimated(mito, tmp_path):
    image, _, recon = mito
    assert _run(tmp_path, image, recon, "--gain", "1.5") == 0
    camera = json.loads((tmp_path / "blur.json").read_text())["camera"]
    assert camera["gain"] == 1.5 and camera["sources"]["gain"] == "given"
    assert camera["sources"]["offset"] == "metadata" and camera["fit"] is None


def test_an_image_without_metadata_gets_an_estimated_camera(tmp_path):
    """The bundled nuclei (no camera metadata): the camera model is fitted and reported."""
    from cellvae.data.samples import write_sample

    image = write_sample("nuclei_2d", tmp_path / "nuclei.ome.zarr")
    recon = ndimage.gaussian_filter(np.asarray(open_image(image).array, np.float32), 1.0)
    write_image(tmp_path / "recon.ome.zarr", recon, "yx")
    assert _run(tmp_path, image, tmp_path / "recon.ome.zarr") == 0
    summary = json.loads((tmp_path / "blur.json").read_text())
    camera = summary["camera"]
    assert camera["sources"] == {"gain": "estimated", "offset": "unknown", "read_noise": "unknown"}
    assert camera["gain"] > 0 and camera["fit"]["windows_used"] >= 64
    assert camera["fit"]["outer_spectrum_ratio"] == pytest.approx(1.0, abs=0.2)
    assert "warning" not in camera["fit"]
    assert 0 < summary["share_of_resolvable_structure_kept"] < 1


def test_truth_problems_are_one_line_errors_and_write_nothing(mito, tmp_path, capsys, rng):
    image, _, recon = mito
    assert _run(tmp_path, image, recon, "--truth-map", str(tmp_path / "t.zarr")) == 1
    assert "--truth-map needs --truth" in capsys.readouterr().err
    write_image(tmp_path / "small.zarr", rng.normal(size=(64, 64)).astype(np.float32), "yx")
    assert _run(tmp_path, image, recon, "--truth", str(tmp_path / "small.zarr")) == 1
    err = capsys.readouterr().err.strip()
    assert "small.zarr: shape (64, 64)" in err and "\n" not in err
    assert not (tmp_path / "blur.zarr").exists() and not (tmp_path / "blur_truth.zarr").exists()
    assert not (tmp_path / "blur.json").exists()


def test_default_truth_map_names():
    from cellvae.cli.blur import truth_map_path

    assert truth_map_path("runs/blurmap.ome.zarr") == "runs/blurmap_truth.ome.zarr"
    assert truth_map_path("b.zarr") == "b_truth.zarr"
    assert truth_map_path("map") == "map_truth"
