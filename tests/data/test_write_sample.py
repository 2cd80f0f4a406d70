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
