"""Tiled reconstruction: exact for an identity model, seam-free, resumable."""

import numpy as np
import pytest
import zarr

from cellvae.inference.tiling import tile_reconstruct


def identity(tiles):
    return [tiles]


def _run(src, axes, ndim, tile, overlap, block, **kw):
    out = zarr.create_array(store={}, shape=src.shape, chunks=block, dtype=np.float32)
    stats = tile_reconstruct(
        src, [out], kw.pop("predict", identity), axes, ndim, tile, overlap, progress=False, **kw
    )
    return out[...], stats


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "block"),
    [
        ((37, 53), (16, 16), (4, 4), (20, 30)),
        ((64, 64), (32, 32), (8, 8), (64, 64)),
        ((10, 70), (16, 32), (2, 8), (8, 16)),
    ],
)
def test_identity_model_reproduces_the_image_2d(rng, shape, tile, overlap, block):
    src = rng.integers(0, 255, shape).astype(np.float32)
    out, _ = _run(src, "yx", 2, tile, overlap, block)
    np.testing.assert_allclose(out, src, rtol=0, atol=1e-3)


def test_identity_model_reproduces_channels_and_loops(rng):
    src = rng.random((2, 3, 5, 21, 19)).astype(np.float32)  # t c z y x, 2D model: loops t, z
    out, stats = _run(src, "tczyx", 2, (8, 8), (2, 2), (1, 3, 2, 16, 16))
    np.testing.assert_allclose(out, src, atol=1e-6)
    assert stats.blocks_written == 2 * 3 * 2 * 2


def test_identity_model_reproduces_a_volume(rng):
    src = rng.random((13, 20, 18)).astype(np.float32)
    out, _ = _run(src, "zyx", 3, (8, 8, 8), (2, 2, 2), (8, 10, 9))
    np.testing.assert_allclose(out, src, atol=1e-6)


def test_integer_targets_are_rounded_exactly(rng):
    src = rng.integers(0, 65535, (40, 40)).astype(np.uint16)
    out = zarr.create_array(store={}, shape=src.shape, chunks=(16, 16), dtype=np.uint16)
    tile_reconstruct(src, [out], identity, "yx", 2, (16, 16), (4, 4), progress=False)
    np.testing.assert_array_equal(out[...], src)


def test_blend_of_constant_tiles_is_smooth():
    """Each tile predicts its own id; the blend ramps between ids with no jump > one step."""
    src = np.zeros((1, 100), np.float32)
    ids = iter(range(1000))

    def tile_id(tiles):
        return [np.stack([np.full(t.shape, next(ids), np.float32) for t in tiles])]

    out, _ = _run(src, "yx", 2, (1, 32), (0, 16), (1, 100), predict=tile_id)
    assert np.abs(np.diff(out[0])).max() < 0.2
    assert out[0, 0] == 0 and out[0, -1] == out[0].max()


def test_resume_skips_finished_blocks_and_gives_the_same_output(rng):
    src = rng.random((48, 48)).astype(np.float32)
    calls = []

    def counting(tiles):
        calls.append(len(tiles))
        return [tiles * 2]

    full, _ = _run(src, "yx", 2, (16, 16), (4, 4), (16, 16), predict=counting)
    n_full = sum(calls)
    out = zarr.create_array(store={}, shape=src.shape, chunks=(16, 16), dtype=np.float32)
    finished: list[int] = []

    class Interrupt(Exception):
        pass

    def stop_after_four(i):
        finished.append(i)
        if len(finished) == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        tile_reconstruct(
            src,
            [out],
            counting,
            "yx",
            2,
            (16, 16),
            (4, 4),
            on_block=stop_after_four,
            progress=False,
            cache_bytes=0,
        )
    calls.clear()
    stats = tile_reconstruct(
        src,
        [out],
        counting,
        "yx",
        2,
        (16, 16),
        (4, 4),
        done=finished,
        progress=False,
        cache_bytes=0,
    )
    assert stats.blocks_skipped == 4 and stats.blocks_written == 5
    assert set(stats.written).isdisjoint(finished)
    assert 0 < sum(calls) < n_full + 9
    np.testing.assert_allclose(out[...], full, atol=1e-6)


def test_cache_predicts_each_tile_once_along_a_row(rng):
    src = rng.random((16, 200)).astype(np.float32)
    # one tile per call, so each block is blended as soon as its tiles are predicted and a
    # tile shared with the next block survives only in the cache
    _, cached = _run(src, "yx", 2, (16, 32), (0, 8), (16, 50), batch_size=1)
    _, uncached = _run(src, "yx", 2, (16, 32), (0, 8), (16, 50), batch_size=1, cache_bytes=0)
    n_tiles = 8  # starts 0, 24, ..., 144 and 168 (flush with the edge)
    assert cached.tiles_predicted == n_tiles
    assert uncached.tiles_predicted > n_tiles


def test_cached_tiles_do_not_keep_whole_prediction_batches_alive(rng):
    """The cache's byte bound counts tiles; a cached tile must not pin its batch's array."""
    import gc
    import weakref

    batches: list[weakref.ref] = []
    alive_at_each_call = []

    def fresh_batch(tiles):
        gc.collect()  # every earlier batch is done with: none may still be alive
        alive_at_each_call.append(sum(ref() is not None for ref in batches))
        out = tiles * 1.0  # a new array per call, as a model's output is
        batches.append(weakref.ref(out))
        return [out]

    src = rng.random((16, 200)).astype(np.float32)
    out, stats = _run(src, "yx", 2, (16, 32), (0, 8), (16, 50), predict=fresh_batch, batch_size=1)
    assert stats.cache_hits > 0  # tiles straddling blocks were cached and reused
    assert len(alive_at_each_call) == 8 and set(alive_at_each_call) == {0}
    np.testing.assert_allclose(out, src, atol=1e-6)


def test_batches_span_blocks_and_are_always_full(rng):
    """No call is wasted on a block's last tiles: calls are full, only the last is padded."""
    sizes = []

    def counting(tiles):
        sizes.append(len(tiles))
        return [tiles]

    src = rng.random((48, 200)).astype(np.float32)
    out, stats = _run(src, "yx", 2, (16, 32), (4, 8), (16, 50), predict=counting, batch_size=4)
    assert set(sizes) == {4} and len(sizes) == -(-stats.tiles_predicted // 4)
    assert stats.tiles_predicted == 4 * 8  # each tile once: 4 rows x 8 columns
    np.testing.assert_allclose(out, src, atol=1e-6)
