"""PatchDataset: exact patches, sharding over ranks and workers, seeds, foreground, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cellvae.data.dataset import PatchDataset
from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError
from tests.data.conftest import image_stats, sparse_blobs


def _expected(data: np.ndarray, axes: str, bits: int, index: tuple) -> np.ndarray:
    q = Quantizer.from_stats(image_stats(data, axes), 0, bits=bits)
    return q.quantize(data[index])


def test_grid_patches_equal_the_quantized_source_regions(ramp_3d):
    path, data = ramp_3d
    ds = PatchDataset([path], (8, 10, 12), ndim=3, sampler="grid", bits=16)
    patches = list(ds)
    tiles = ds.grid_tiles()
    assert len(patches) == len(tiles) == len(ds) == 3 * 3 * 3
    for patch, (_, _, (z, y, x)) in zip(patches, tiles):
        region = np.s_[z : z + 8, y : y + 10, x : x + 12]
        assert patch.shape == (1, 8, 10, 12) and patch.dtype == torch.float32
        assert np.array_equal(patch[0].numpy(), _expected(data, "zyx", 16, region))


def test_2d_patch_from_3d_data_is_one_plane(ramp_3d):
    path, data = ramp_3d
    ds = PatchDataset([path], (6, 7), ndim=2, bits=8)
    volume = ds.volumes()[0]
    patch = ds.quantize(volume, ds.read_patch(volume, 0, (3, 2, 5)))
    assert patch.shape == (1, 6, 7)
    assert np.array_equal(patch[0].numpy(), _expected(data, "zyx", 8, np.s_[3, 2:8, 5:12]))
    levels = (patch.numpy() + 1) / 2 * 255
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-4)


def test_channels_and_time_are_handled(make_volume, rng):
    data = rng.integers(0, 4000, size=(3, 2, 16, 16)).astype(np.uint16)
    path = make_volume(data, "tcyx")
    ds = PatchDataset([path], (8, 8), ndim=2, sampler="grid", bits=8)
    patches = list(ds)
    assert len(patches) == 3 * 4 and patches[0].shape == (2, 8, 8)
    stats = image_stats(data, "tcyx")
    qs = [Quantizer.from_stats(stats, c, bits=8) for c in range(2)]
    expected = np.stack([qs[c].quantize(data[2, c, 8:16, 8:16]) for c in range(2)])
    assert np.array_equal(patches[-1].numpy(), expected)


def test_random_patches_stay_inside_the_region(ramp_3d):
    path, data = ramp_3d
    region = ((0, 20), (0, 12), (14, 28))
    ds = PatchDataset([path], (4, 4), bits=16, regions=[region], patches_per_epoch=40)
    q = Quantizer.from_stats(image_stats(data, "zyx"), 0, bits=16)
    allowed = set(q.quantize(data[:, :12, 14:]).ravel().tolist())
    values = set(torch.cat([p.ravel() for p in ds]).tolist())
    assert values <= allowed


def _tile_keys(ds: PatchDataset) -> dict[bytes, int]:
    keys = {}
    for i, (v, t, origin) in enumerate(ds.grid_tiles()):
        volume = ds.volumes()[v]
        keys[ds.quantize(volume, ds.read_patch(volume, t, origin)).numpy().tobytes()] = i
    return keys


@pytest.mark.slow
def test_two_ranks_two_workers_read_every_tile_once(ramp_3d):
    """2 simulated ranks x 2 DataLoader workers (real processes) over a Zarr v3 grid."""
    path, _ = ramp_3d
    ds = PatchDataset([path], (5, 6, 7), ndim=3, sampler="grid", bits=16)
    keys = _tile_keys(ds)
    assert len(keys) == 4 * 4 * 4
    seen = []
    for rank in range(2):
        ds.rank, ds.world_size, ds.num_workers, ds.batch_size = rank, 2, 2, 3
        loader = DataLoader(ds, batch_size=3, num_workers=2)
        batches = list(loader)
        assert len(batches) == len(loader)
        seen += [keys[p.numpy().tobytes()] for b in batches for p in b]
    assert sorted(seen) == list(range(64))


def test_shards_partition_the_grid(ramp_3d):
    path, _ = ramp_3d
    ds = PatchDataset([path], (4, 4), ndim=2, sampler="grid")
    ds.batch_size = 5
    n = len(ds.grid_tiles())
    shards = [ds.shard_tiles(s, 4) for s in range(4)]
    flat = [tile for shard in shards for tile in shard]
    assert len(flat) == n == 20 * 6 * 7 and len(set(flat)) == n
    # blocks of batch_size consecutive grid tiles are dealt round-robin: 168 blocks of 5
    position = {tile: i for i, tile in enumerate(ds.grid_tiles())}
    for s, shard in enumerate(shards):
        assert [position[t] for t in shard] == [i for i in range(n) if (i // 5) % 4 == s]
    assert [len(shard) for shard in shards] == [210] * 4
    # 840 tiles in batches of 11: 76 whole blocks and one of 4, which shard 0 gets last
    ds.batch_size = 11
    assert [len(ds.shard_tiles(s, 4)) for s in range(4)] == [19 * 11 + 4, 209, 209, 209]


def _first(ds: PatchDataset, n: int = 4) -> list[torch.Tensor]:
    return [p for _, p in zip(range(n), ds)]


def test_same_seed_same_patches_other_seed_rank_epoch_differ(ramp_3d):
    path, _ = ramp_3d

    def make(seed=0, rank=0):
        ds = PatchDataset([path], (4, 4), bits=16, seed=seed, patches_per_epoch=8)
        ds.rank, ds.world_size = rank, 2
        return ds

    a, b = _first(make()), _first(make())
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    for other in (_first(make(seed=1)), _first(make(rank=1))):
        assert not any(torch.equal(x, y) for x, y in zip(a, other))
    ds = make()
    first, second = list(ds), list(ds)
    assert not all(torch.equal(x, y) for x, y in zip(first, second))
    ds.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(first, list(ds)))


@pytest.mark.slow
def test_workers_draw_different_reproducible_streams(ramp_3d):
    path, _ = ramp_3d
    ds = PatchDataset([path], (4, 4), bits=16, seed=3, patches_per_epoch=8)
    ds.num_workers = 2
    runs = [list(DataLoader(ds, batch_size=None, num_workers=2)) for _ in range(2)]
    assert len(runs[0]) == len(ds) == 8
    assert all(torch.equal(x, y) for x, y in zip(*runs))
    worker0, worker1 = runs[0][0::2], runs[0][1::2]
    assert not any(torch.equal(x, y) for x, y in zip(worker0, worker1))


def test_foreground_sampler_prefers_bright_patches(make_volume):
    data = sparse_blobs((256, 256), np.random.default_rng(7))
    path = make_volume(data, "yx")
    means, shares = {}, {}
    for sampler in ("random", "foreground"):
        ds = PatchDataset(
            [path], (16, 16), sampler=sampler, seed=0, patches_per_epoch=60, max_tries=30
        )
        patches = torch.stack(list(ds))
        means[sampler] = float(patches.mean())
        shares[sampler] = float(((patches > 0).float().mean(dim=(1, 2, 3)) >= 0.05).float().mean())
    assert shares["random"] < 0.25 and shares["foreground"] > 0.8
    assert means["foreground"] > means["random"] + 0.2


def test_memory_stays_bounded_on_a_larger_volume(make_volume, rng):
    data = rng.integers(0, 1000, size=(128, 256, 256), dtype=np.uint16)  # 16 MiB
    path = make_volume(data, "zyx", chunks=(16, 64, 64))
    ds = PatchDataset([path], (8, 32, 32), ndim=3, bits=8, patches_per_epoch=40)
    del data
    tracemalloc.start()
    count = sum(1 for _ in ds)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 40
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_missing_stats_and_missing_file_are_user_errors(make_volume, tmp_path):
    path = make_volume(np.zeros((8, 8), np.uint8), "yx", stats=False)
    with pytest.raises(CellvaeError, match="no intensity statistics"):
        PatchDataset([path], (4, 4)).volumes()
    with pytest.raises(CellvaeError, match=r"nope\.zarr"):
        PatchDataset([str(tmp_path / "nope.zarr")], (4, 4)).volumes()


def test_image_smaller_than_patch_names_the_file(make_volume):
    path = make_volume(np.zeros((8, 30), np.uint8), "yx", name="tiny.zarr")
    with pytest.raises(CellvaeError, match=r"tiny\.zarr.*smaller than the patch"):
        PatchDataset([path], (16, 16)).volumes()
