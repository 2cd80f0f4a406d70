"""``cellvae fit`` hands the data's voxel size to the model: ``downsample: auto`` follows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cellvae.cli import main
from cellvae.training.checkpoint import load_vae


@pytest.fixture(scope="module")
def stack_zarr(tmp_path_factory) -> Path:
    """An 8×32×32 uint8 stack with a z-step 5× its pixel size (0.5 vs 0.1 µm)."""
    import tifffile
    from scipy.ndimage import gaussian_filter

    from cellvae.io.ingest import ingest

    folder = tmp_path_factory.mktemp("stack")
    noise = np.random.default_rng(0).random((8, 32, 32))
    image = (255 * (gaussian_filter(noise, 1.5) - 0.4).clip(0, 0.2) / 0.2).astype(np.uint8)
    tifffile.imwrite(folder / "stack.tif", image)
    return ingest(
        folder / "stack.tif",
        folder / "stack.ome.zarr",
        axes="zyx",
        voxel_size=(0.5, 0.1, 0.1),
        progress=False,
    )


@pytest.mark.slow
def test_fit_resolves_auto_downsampling_from_the_voxel_size(stack_zarr, tmp_path) -> None:
    args = [
        "fit",
        f"--data.paths=[{stack_zarr}]",
        "--data.ndim=3",
        "--data.patch_size=[4, 8, 8]",
        "--data.batch_size=2",
        "--data.patches_per_epoch=4",
        "--data.val_fraction=0",
        "--model.arch=hierarchical",
        "--model.widths=[4, 4, 4]",
        "--model.latent_channels=2",
        "--model.global_dim=3",
        "--model.downsample=auto",
        "--model.iwae_samples=0",
        "--model.grid_images=0",
        "--trainer.max_steps=2",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(args) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    vae, hparams = load_vae(last)
    assert hparams["voxel_size"] == pytest.approx([0.5, 0.1, 0.1])
    assert hparams["downsample"] == [[1, 2, 2], [1, 2, 2]]
    assert vae.downsampling == (1, 4, 4)
    with torch.no_grad():
        assert vae.embed(torch.zeros(1, 1, 4, 8, 8))[0].shape == (1, 3)
