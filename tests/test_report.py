"""The run report summarises what a run folder holds and says what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellvae.cli import main
from cellvae.errors import CellvaeError
from cellvae.io.omezarr import write_image
from cellvae.report import write_run_report


def _training_log(run: Path) -> None:
    log = run / "train" / "lightning_logs" / "version_0"
    log.mkdir(parents=True)
    pd.DataFrame(
        {
            "step": [0, 10, 20, 20],
            "train/bits_per_dim": [6.0, 4.0, 3.0, np.nan],
            "val/bits_per_dim": [np.nan, np.nan, np.nan, 3.25],
            "val/active_units": [np.nan, np.nan, np.nan, 7.0],
        }
    ).to_csv(log / "metrics.csv", index=False)


def _blur(run: Path, rng: np.random.Generator) -> None:
    image = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    write_image(run / "image.ome.zarr", image, "yx")
    write_image(run / "recon.ome.zarr", image, "yx")
    write_image(run / "blurmap.ome.zarr", np.full((4, 4), 0.5, np.float32), "yx")
    summary = {
        "original": str(run / "image.ome.zarr"),
        "recon": str(run / "recon.ome.zarr"),
        "blur_map": str(run / "blurmap.ome.zarr"),
        "cutoff_cycles_per_px": 0.125,
        "global_hf_ratio": 0.4321,
        "median_window_hf_ratio": 0.5,
        "frc": {"resolution_1_7_px": 5.565847804845307, "resolution_half_bit_px": 3.0},
        "worst_regions": [{"centre": [8.0, 24.0], "hf_ratio": 1.8579013837221526e-05}],
    }
    (run / "blur.json").write_text(json.dumps(summary))


def test_full_run_report_lists_numbers_and_figures(tmp_path: Path, rng) -> None:
    _training_log(tmp_path)
    _blur(tmp_path, rng)
    cells = pd.DataFrame(
        {"label": [1, 2, 3], "size_voxels": [10, 20, 30], "pca_0": [0, 1, 2], "pca_1": [1, 0, 1]}
    )
    cells["z_mean_0"] = 0.0
    cells.to_parquet(tmp_path / "cells.parquet")
    tifffile.imwrite(tmp_path / "samples.tif", rng.random((4, 16, 16), dtype=np.float32))

    report = write_run_report(tmp_path)

    text = report.read_text()
    assert "| val/bits_per_dim | 3.25 |" in text
    assert "| val/active_units | 7 |" in text
    assert "**0.432**" in text
    assert "FRC 1/7 resolution: 5.566 px; half-bit: 3 px" in text  # rounded for reading
    assert "| [8, 24] | 1.858e-05 |" in text
    assert "3 cells, 1 latent dimensions" in text
    figures = report.with_name("report_figures")
    for name in ("training.png", "blur.png", "cells.png", "samples.png"):
        assert (figures / name).stat().st_size > 1000
        assert f"report_figures/{name}" in text


def test_partial_run_says_what_is_missing(tmp_path: Path) -> None:
    _training_log(tmp_path)
    text = write_run_report(tmp_path).read_text()
    assert "No blur summary" in text and "No cell table" in text


def test_empty_or_missing_folder_is_an_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(CellvaeError, match="nothing to report"):
        write_run_report(tmp_path)
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
    assert not (tmp_path / "report_figures").exists()


def test_noise_aware_blur_figures_are_named_for_what_they_are(tmp_path: Path) -> None:
    """A real ``cellvae blur --truth`` summary: the share kept, the resolution pair, the
    camera and the truth-based map beside the noise-aware one."""
    from scipy import ndimage

    from cellvae.data.synthetic import mitochondria

    synth = mitochondria((256, 256), seed=3, photons=200)
    clean = synth.clean
    recon = ndimage.gaussian_filter(clean, 1.0)
    voxel, units = {"y": 0.1, "x": 0.1}, {"y": "micrometer", "x": "micrometer"}
    for name, data in (("image", synth.image), ("truth", clean), ("recon", recon)):
        write_image(tmp_path / f"{name}.ome.zarr", data, "yx", voxel_size=voxel, units=units)
    argv = ["blur", str(tmp_path / "image.ome.zarr"), str(tmp_path / "recon.ome.zarr")]
    argv += ["-o", str(tmp_path / "blurmap.ome.zarr"), "--summary", str(tmp_path / "blur.json")]
    argv += ["--truth", str(tmp_path / "truth.ome.zarr"), "--gain", str(synth.metadata["gain"])]
    argv += ["--offset", "0", "--read-noise", "2"]
    assert main(argv) == 0
    text = write_run_report(tmp_path).read_text()
    assert "- share of the original's resolvable structure kept: **0.4" in text
    assert "original resolves 0.2" in text and "µm, reconstruction keeps 0.7" in text
    assert "- camera model: gain 0.9714 (given), offset 0 (given), read noise 2 (given)" in text
    assert "- against the noise-free truth (`" in text and "share kept **0.4" in text
    assert "against the *noisy* original (not noise-aware" in text
    assert "| centre (px) | share of the original's structure kept |" in text
    figures = tmp_path / "report_figures"
    assert "report_figures/blur.png" in text and "report_figures/blur_resolution.png" in text
    assert (figures / "blur_resolution.png").stat().st_size > 1000
