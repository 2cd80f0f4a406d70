"""CellDataModule: validated arguments, disjoint train/val regions, loaders, metadata links."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellvae.data.datamodule import CellDataModule, split_regions
from cellvae.data.samplers import PatchLayout
from cellvae.errors import ConfigError


@pytest.fixture
def volume_3d(make_volume, rng) -> str:
    return make_volume(rng.integers(0, 3000, size=(16, 40, 64)).astype(np.uint16), "zyx")


@pytest.fixture
def image_2d(make_volume, rng) -> str:
    return make_volume(rng.integers(0, 200, size=(2, 48, 48)).astype(np.uint8), "cyx")


def test_split_is_disjoint_with_a_one_patch_gap():
    layout = PatchLayout.build("v", "zyx", (16, 40, 100), (8, 10, 12), ndim=3)
    train, val = split_regions(layout, 0.2, "v")
    assert train == ((0, 16), (0, 40), (0, 68))
    assert val == ((0, 16), (0, 40), (80, 100))
    assert val[2][0] - train[2][1] == 12


def test_split_refuses_volumes_too_small_to_split():
    layout = PatchLayout.build("v.zarr", "yx", (40, 40), (16, 16), ndim=2)
    with pytest.raises(ConfigError, match=r"^val_fraction: v\.zarr"):
        split_regions(layout, 0.1, "v.zarr")


def test_train_and_val_patches_never_overlap(volume_3d):
    dm = CellDataModule([volume_3d], [8, 8], sampler="random", val_fraction=0.25, batch_size=4)
    dm.setup("fit")
    assert dm.train_regions == [((0, 16), (0, 40), (0, 40))]
    assert dm.val_regions == [((0, 16), (0, 40), (48, 64))]
    val_batches = list(dm.val_dataloader())  # weighted: padding tiles (none here) weigh 0
    n_val = sum(int(b["weight"].sum()) for b in val_batches)
    assert n_val == 16 * 5 * 2 and len(val_batches) == len(dm.val_dataloader())
    assert all(b["image"].shape[0] == b["weight"].shape[0] for b in val_batches)
    train = next(iter(dm.train_dataloader()))
    assert train.shape == (4, 1, 8, 8) and train.dtype == torch.float32
    assert train.min() >= -1 and train.max() <= 1


def test_bits_null_on_16_bit_data_fit_the_levels_to_the_raw_range(make_volume, rng):
    # a 16-bit camera image using 1000 and 3000 counts in its two channels
    narrow = rng.integers(100, 1100, size=(48, 48))
    wide = rng.integers(100, 3100, size=(48, 48))
    path = make_volume(np.stack([narrow, wide]).astype(np.uint16), "cyx")
    dm = CellDataModule([path], [16, 16], bits=None, val_fraction=0.0)
    assert dm.bits == 12  # 3000 counts need 12 bits; the old default took 16
    assert CellDataModule([path], [16, 16], bits=None, channels=[0], val_fraction=0.0).bits == 10
    patch = next(iter(dm.train_dataloader()))
    levels = (patch + 1) * (2**12 - 1) / 2  # inputs sit on the 12-bit grid
    assert torch.allclose(levels, levels.round(), atol=1e-2)


def test_in_channels_and_bits_come_from_metadata(image_2d):
    dm = CellDataModule([image_2d], [16, 16], bits=None, val_fraction=0.0)
    assert dm.in_channels == 2 and dm.bits == 8
    assert dm.val_dataloader() == []
    assert CellDataModule([image_2d], [16, 16], bits=5, val_fraction=0.0).bits == 5


def test_epochs_draw_new_patches_reproducibly(image_2d):
    def batches():
        dm = CellDataModule([image_2d], [8, 8], sampler="random", val_fraction=0.0, seed=4)
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [next(iter(loader)) for _ in range(2)]

    (a0, a1), (b0, b1) = batches(), batches()
    assert torch.equal(a0, b0) and torch.equal(a1, b1)
    assert not torch.equal(a0, a1)


@pytest.mark.slow
def test_two_worker_loader_reads_zarr_v3(volume_3d):
    dm = CellDataModule(
        [volume_3d], [4, 8, 8], ndim=3, num_workers=2, batch_size=5, patches_per_epoch=20
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == 4
    assert all(b.shape == (5, 1, 4, 8, 8) for b in batches)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"paths": []}, "paths"),
        ({"paths": ["missing.zarr"]}, "paths"),
        ({"patch_size": [8, 8, 8]}, "patch_size"),
        ({"patch_size": [0, 8]}, "patch_size"),
        ({"ndim": 4}, "ndim"),
        ({"sampler": "everywhere"}, "sampler"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"patches_per_epoch": 0}, "patches_per_epoch"),
        ({"val_fraction": 0.9}, "val_fraction"),
        ({"low_percentile": -1.0}, "low_percentile"),
        ({"high_percentile": 0.05}, "high_percentile"),
        ({"low_percentile": 5.0}, "low_percentile"),
        ({"bits": 32}, "bits"),
        ({"channels": [2]}, "channels"),
        ({"patch_size": [64, 64]}, "patch_size"),
        ({"multiprocessing_context": "thread"}, "multiprocessing_context"),
    ],
)
def test_config_errors_name_their_field(image_2d, kwargs, field):
    args = {"paths": [image_2d], "patch_size": [8, 8], **kwargs}
    with pytest.raises(ConfigError, match=f"^{field}"):
        CellDataModule(**args)


def test_3d_patches_from_2d_data_name_ndim(image_2d):
    with pytest.raises(ConfigError, match=r"^ndim: 3D patches need 3D data"):
        CellDataModule([image_2d], [4, 8, 8], ndim=3)


@pytest.mark.slow
def test_persistent_workers_draw_new_patches_every_epoch(volume_3d):
    dm = CellDataModule(
        [volume_3d], [4, 8, 8], ndim=3, num_workers=1, batch_size=5, patches_per_epoch=10
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers and not loader.pin_memory  # no GPU here
    epochs = [torch.cat(list(loader)) for _ in range(3)]
    assert all(e.shape == (10, 1, 4, 8, 8) for e in epochs)
    # the same worker process served all three epochs, and each drew its own patches
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    # and they are the patches a fresh loader draws for those epochs (reproducible stream)
    fresh = CellDataModule(
        [volume_3d], [4, 8, 8], ndim=3, num_workers=1, batch_size=5, patches_per_epoch=10
    )
    fresh.setup("fit")
    again = fresh.train_dataloader()
    assert all(torch.equal(torch.cat(list(again)), e) for e in epochs)
