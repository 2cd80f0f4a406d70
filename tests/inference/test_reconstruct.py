"""Whole-image reconstruction: exact with an identity model, resumable, with uncertainty."""

import numpy as np
import pytest

from cellvae.errors import CellvaeError
from cellvae.inference import reconstruct as rec
from cellvae.inference.partial import BlockRecord
from cellvae.io.omezarr import open_image
from tests.inference.helpers import IdentityVAE, full_range_image, stand_in, write_test_image


@pytest.mark.parametrize(("shape", "tile", "overlap"), [((45, 70), 16, 4), ((33, 20), 8, 2)])
def test_identity_model_returns_the_input_exactly(tmp_path, rng, monkeypatch, shape, tile, overlap):
    data = full_range_image(rng, shape)
    src = write_test_image(tmp_path / "in.zarr", data, "yx")
    stand_in(monkeypatch, IdentityVAE())
    out = tmp_path / "out.zarr"
    rec.reconstruct_image(
        "x.ckpt", src, out, tile, overlap, dtype="input", block=32, progress=False
    )
    image = open_image(out)
    assert image.axes == "yx" and image.voxel_size == {"y": 0.5, "x": 0.5}
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image.array[...], data)
    assert not rec.temporary_path(out).exists()


def test_2d_model_on_a_time_lapse_volume_runs_plane_by_plane(tmp_path, rng, monkeypatch):
    data = full_range_image(rng, (2, 3, 20, 24))
    src = write_test_image(tmp_path / "in.zarr", data, "tzyx")
    stand_in(monkeypatch, IdentityVAE())
    out = tmp_path / "out.zarr"
    rec.reconstruct_image("x.ckpt", src, out, 8, 2, progress=False)
    result = open_image(out).array[...]
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, data, atol=1e-3)


def test_resume_recomputes_no_finished_block(tmp_path, rng, monkeypatch):
    data = full_range_image(rng, (64, 64))
    src = write_test_image(tmp_path / "in.zarr", data, "yx")
    vae = IdentityVAE()
    stand_in(monkeypatch, vae)
    out = tmp_path / "out.zarr"
    real_mark = BlockRecord.mark

    def mark_then_stop(record, block):
        real_mark(record, block)
        if len(record.done()) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(BlockRecord, "mark", mark_then_stop)
    kw = dict(tile=16, overlap=4, block=32, cache_mb=0, progress=False)
    with pytest.raises(rec.Interrupted) as stop:
        rec.reconstruct_image("x.ckpt", src, out, **kw)
    assert (stop.value.kept, stop.value.total) == (2, 4)
    assert not out.exists() and rec.temporary_path(out).exists()
    monkeypatch.setattr(BlockRecord, "mark", real_mark)
    vae.calls = 0
    stats = rec.reconstruct_image("x.ckpt", src, out, **kw)
    assert stats.blocks_skipped == 2 and stats.blocks_written == 2
    assert set(stats.written) == {2, 3}
    resumed_calls = vae.calls
    vae.calls = 0
    rec.reconstruct_image("x.ckpt", src, tmp_path / "fresh.zarr", **kw)
    assert resumed_calls < vae.calls
    np.testing.assert_array_equal(
        open_image(out).array[...], open_image(tmp_path / "fresh.zarr").array[...]
    )


def test_samples_write_mean_and_std(tmp_path, ckpt2d, image2d):
    out = tmp_path / "recon.zarr"
    rec.reconstruct_image(ckpt2d, image2d, out, samples=3, progress=False)
    mean, std = open_image(out), open_image(rec.std_path(out))
    assert mean.shape == std.shape == (40, 52)
    s = std.array[...]
    assert np.all(np.isfinite(mean.array[...])) and np.all(s >= 0) and s.max() > 0


def test_real_checkpoint_mode_reconstruction_is_finite(tmp_path, ckpt2d, image2d):
    out = tmp_path / "recon.zarr"
    rec.reconstruct_image(ckpt2d, image2d, out, mode="mode", progress=False)
    values = open_image(out).array[...]
    assert values.shape == (40, 52) and np.all(np.isfinite(values))


@pytest.mark.parametrize(
    ("tile", "match"), [(10, "downsampling 4"), (2, "at least 4"), (32, "differs from the model")]
)
def test_bad_tiles_are_refused_before_writing(tmp_path, ckpt2d, image2d, tile, match):
    out = tmp_path / "recon.zarr"
    with pytest.raises(CellvaeError, match=match):
        rec.reconstruct_image(ckpt2d, image2d, out, tile=tile, progress=False)
    assert not out.exists() and not rec.temporary_path(out).exists()
