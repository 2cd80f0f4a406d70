"""Label images stored inside an OME-Zarr image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from cellvae.errors import CellvaeError
from cellvae.io.labels import write_labels
from cellvae.io.omezarr import open_labels, write_image


@pytest.fixture
def image_path(tmp_path: Path, rng: np.random.Generator) -> Path:
    path = tmp_path / "img.ome.zarr"
    write_image(path, rng.integers(0, 255, (128, 128), dtype=np.uint8), "yx")
    return path


def test_labels_round_trip_and_are_registered(image_path: Path) -> None:
    labels = np.zeros((128, 128), np.int32)
    labels[10:20, 30:50] = 7
    write_labels(image_path, labels, name="nuclei")
    opened = open_labels(image_path)
    np.testing.assert_array_equal(opened.to_dask().compute(), labels)
    ome = zarr.open_group(str(image_path / "labels")).attrs["ome"]
    assert ome["labels"] == ["nuclei"] and ome["version"] == "0.5"
    label_ome = zarr.open_group(str(image_path / "labels" / "nuclei")).attrs["ome"]
    assert label_ome["image-label"]["source"] == {"image": "../../"}


def test_labels_downsample_by_nearest_neighbour(image_path: Path) -> None:
    labels = np.zeros((128, 128), np.int32)
    labels[::2, ::2] = 3  # a mean would give fractional ids at the next level
    write_labels(image_path, labels, name="dots")
    level1 = zarr.open_array(str(image_path / "labels" / "dots" / "s1"))[:]
    assert set(np.unique(level1)) <= {0, 3}


def test_labels_of_wrong_shape_are_refused(image_path: Path) -> None:
    with pytest.raises(CellvaeError, match="do not match"):
        write_labels(image_path, np.zeros((64, 128), np.int32))
    assert not (image_path / "labels" / "labels").exists()


def test_existing_labels_need_overwrite(image_path: Path) -> None:
    labels = np.ones((128, 128), np.int32)
    write_labels(image_path, labels, name="cells")
    with pytest.raises(CellvaeError, match="overwrite"):
        write_labels(image_path, labels, name="cells")
    write_labels(image_path, 2 * labels, name="cells", overwrite=True)
    assert open_labels(image_path).to_dask().compute().max() == 2
