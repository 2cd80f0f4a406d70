"""Reconstruction speed options: ``--compile`` gives the eager reconstruction (and a failed
compilation falls back to eager with a warning), the default batch size follows the tile,
and no batch size changes the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from cellvae.inference.reconstruct import reconstruct_image
from tests.inference.helpers import save_checkpoint


def _recon(path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["s0"][...])


@pytest.fixture
def hier_ckpt(tmp_path):
    """A tiny hierarchical model with the presets' half-resolution sub-pixel head."""
    return save_checkpoint(
        tmp_path / "hier.ckpt",
        arch="hierarchical",
        widths=(4, 8),
        latent_channels=2,
        likelihood="dlogistic",
        finest_latent="half",
        head_upsample="shuffle",
        head_width=2,
    )


def test_failed_compilation_warns_and_reconstructs_eagerly(
    hier_ckpt, image2d, tmp_path, monkeypatch
):
    reconstruct_image(hier_ckpt, image2d, tmp_path / "eager.zarr", tile=16, progress=False)

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="--compile: torch.compile failed.*no C\\+\\+"):
        reconstruct_image(
            hier_ckpt, image2d, tmp_path / "c.zarr", tile=16, progress=False, compile=True
        )
    np.testing.assert_array_equal(_recon(tmp_path / "c.zarr"), _recon(tmp_path / "eager.zarr"))


@pytest.mark.slow
def test_compiled_reconstruction_equals_eager(hier_ckpt, image2d, tmp_path):
    reconstruct_image(hier_ckpt, image2d, tmp_path / "eager.zarr", tile=16, progress=False)
    with torch._dynamo.config.patch(error_on_recompile=True):  # one shape: one compilation
        stats = reconstruct_image(
            hier_ckpt, image2d, tmp_path / "c.zarr", tile=16, progress=False, compile=True
        )
    assert stats.tiles_predicted > 4  # several batches, the last one padded
    np.testing.assert_allclose(
        _recon(tmp_path / "c.zarr"), _recon(tmp_path / "eager.zarr"), rtol=1e-5, atol=1e-4
    )


def test_default_batch_holds_about_2_18_voxels_per_call() -> None:
    from cellvae.inference.reconstruct import default_batch

    assert default_batch((64, 64)) == 16  # capped
    assert default_batch((256, 256)) == 4
    assert default_batch((16, 32, 32)) == 16
    assert default_batch((64, 64, 64)) == 1
    assert default_batch((128, 128, 128)) == 1  # never 0


def test_batch_size_does_not_change_the_reconstruction(hier_ckpt, image2d, tmp_path):
    outs = []
    for batch in (None, 1, 3):
        path = tmp_path / f"b{batch}.zarr"
        reconstruct_image(hier_ckpt, image2d, path, tile=16, batch_size=batch, progress=False)
        outs.append(_recon(path))
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-6, atol=1e-5)


def test_an_error_of_the_model_itself_is_not_taken_for_a_compiler_failure():
    import warnings

    from cellvae.data.normalize import Quantizer
    from cellvae.inference.model import Reconstructor

    class Broken(torch.nn.Module):
        ndim = 2

        def reconstruct_params(self, x, sample=False):
            raise ValueError("the model's own bug")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "--compile: ... running without it" warning
        with pytest.raises(ValueError, match="own bug"):
            Reconstructor(Broken(), [Quantizer(0, 255)])(np.zeros((1, 1, 4, 4), np.float32))
