"""A resumed run continues its patch stream (issue 22 item 15), and padding gives every DDP
rank the same number of batches with every real tile once (item 14)."""

from __future__ import annotations

import pytest
import torch

from cellvae.data.datamodule import EpochLoader
from cellvae.data.dataset import PatchDataset


def _loader(path, sampler, workers, **kwargs):
    ds = PatchDataset([path], (4, 4), bits=16, seed=5, sampler=sampler, **kwargs)
    ds.batch_size, ds.num_workers = 3, max(1, workers)
    return EpochLoader(ds, batch_size=3, num_workers=workers, persistent_workers=workers > 0)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_a_resumed_loader_continues_the_sequence_patch_for_patch(ramp_3d, sampler, workers):
    path, _ = ramp_3d
    kwargs = {"patches_per_epoch": 30} if sampler == "random" else {}
    straight = _loader(path, sampler, workers, **kwargs)
    epochs = [list(straight), list(straight)]
    assert len(epochs[0]) == len(straight) >= 6
    done = 5  # the interrupted run consumed 5 batches of epoch 0, then was requeued
    progress = iter([done])
    first = _loader(path, sampler, workers, **kwargs)
    first.progress = lambda: next(progress)
    iter(first)  # the pass the checkpoint was saved in
    state = first.state_dict()
    assert state == {"epoch": 0, "batches": done}
    resumed = _loader(path, sampler, workers, **kwargs)
    resumed.load_state_dict(state)
    after = [list(resumed), list(resumed)]
    assert len(after[0]) == len(epochs[0]) - done
    for got, want in zip(after[0] + after[1], epochs[0][done:] + epochs[1]):
        assert torch.equal(got, want)


def test_a_checkpoint_at_the_end_of_an_epoch_resumes_with_the_next_epoch(ramp_3d):
    path, _ = ramp_3d
    straight = _loader(path, "random", 0, patches_per_epoch=12)
    epochs = [list(straight), list(straight)]
    resumed = _loader(path, "random", 0, patches_per_epoch=12)
    resumed.load_state_dict({"epoch": 0, "batches": len(epochs[0])})
    assert all(torch.equal(a, b) for a, b in zip(list(resumed), epochs[1]))


@pytest.mark.parametrize("pad", ["mask", "wrap"])
def test_padding_gives_every_rank_the_same_batches_and_every_tile_once(ramp_3d, pad):
    path, _ = ramp_3d
    world, b = 4, 8
    counts, real = [], []
    for rank in range(world):
        ds = PatchDataset([path], (12, 14), bits=16, sampler="grid")  # 20 x 2 x 2 = 80 tiles
        ds.rank, ds.world_size, ds.batch_size, ds.pad = rank, world, b, pad
        items = list(ds)
        counts.append(len(items))
        assert len(items) == len(ds)
        if pad == "mask":
            real += [i["image"] for i in items if i["weight"] == 1.0]
            assert all(i["weight"] in (0.0, 1.0) for i in items)
        else:
            real += items
    # 10 blocks of 8 over 4 ranks: 3 batches each (2 ranks get one padding batch)
    assert counts == [3 * b] * world
    keys = {t.numpy().tobytes() for t in real}
    assert len(keys) == 80  # every tile of the grid is there
    if pad == "mask":
        assert len(real) == 80  # ... exactly once; the padding weighs nothing


def test_without_padding_ranks_beyond_the_tiles_get_nothing(ramp_3d):
    """What the presets' 16 validation tiles did to 4-8 ranks before padding: no batch at all
    for ranks 2 and 3, which then skipped the reduces the others waited in."""
    path, _ = ramp_3d
    lengths = []
    for rank in range(4):
        ds = PatchDataset(
            [path], (10, 14), bits=16, sampler="grid", regions=[((0, 4), (0, 20), (0, 28))]
        )
        ds.rank, ds.world_size, ds.batch_size = rank, 4, 8
        lengths.append(len(list(ds)))
    assert lengths == [8, 8, 0, 0]  # 16 tiles in blocks of 8
