"""Samples written as OME-Zarr images with labels (``cellvae ingest --sample``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellvae.cli import main
from cellvae.data.samples import load_sample
from cellvae.io.omezarr import open_image, open_labels


def test_sample_is_written_with_stats_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "mito.ome.zarr"
    assert main(["ingest", "--sample", "mitochondria_2d", "-o", str(out)]) == 0
    sample = load_sample("mitochondria_2d")
    image = open_image(out)
    assert image.axes == "yx"
    np.testing.assert_array_equal(image.array[:], sample.image)
    assert image.stats["channels"][0]["max"] == sample.image.max()
    np.testing.assert_array_equal(open_labels(out).to_dask().compute(), sample.labels)


def test_unknown_sample_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x.ome.zarr"
    assert main(["ingest", "--sample", "nope", "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    assert not out.exists()


def test_synthetic_sample_writes_its_camera_and_truth(tmp_path: Path) -> None:
    from cellvae.io.camera import read_camera
    from cellvae.io.provenance import read_provenance

    out, truth = tmp_path / "mito.ome.zarr", tmp_path / "mito_truth.ome.zarr"
    args = ["ingest", "--sample", "mitochondria_2d", "-o", str(out), "--truth-out", str(truth)]
    assert main(args) == 0
    sample = load_sample("mitochondria_2d")
    written = open_image(truth)
    assert written.axes == "yx" and written.dtype == np.float32
    np.testing.assert_array_equal(written.array[:], sample.truth)
    # the truth is the image's expected value: the noise averages out against it
    assert abs(float(np.mean(sample.image - sample.truth))) < 0.5
    assert read_provenance(truth)["verb"] == "ingest"
    camera = read_camera(out)
    assert camera == {
        "gain": pytest.approx(0.8 * 255 / 210),
        "offset": 0.0,
        "read_noise": 2.0,
        "source": "mitochondria_2d: the synthetic generator's camera",
    }


def test_truth_of_a_real_sample_or_a_file_is_refused(tmp_path: Path, capsys) -> None:
    out, truth = tmp_path / "n.ome.zarr", tmp_path / "t.ome.zarr"
    args = ["ingest", "--sample", "nuclei_2d", "-o", str(out), "--truth-out", str(truth)]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert "has no noise-free truth" in err and "\n" not in err
    assert not out.exists() and not truth.exists()
    assert main(["ingest", str(out), "-o", str(tmp_path / "x.zarr"), "--truth-out", str(truth)])
    assert "--truth-out needs --sample" in capsys.readouterr().err
