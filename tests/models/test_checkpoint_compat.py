"""Checkpoints saved before the architecture options existed load and compute as before.

``data/old_*.ckpt`` were written by ``VAEModule`` at commit 854582b (no ``global_dim``,
``groups_per_scale``, ``downsample``, ``voxel_size`` or ``finest_latent`` hyper-parameters);
``data/old_outputs.pt`` holds that code's posterior-mean reconstruction and embedding of a fixed
input. Defaults must rebuild the same network, so both must come out identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cellvae.training.checkpoint import load_vae
from cellvae.training.module import LATER_MODEL_KEYS, VAEModule

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["hier2d", "flat3d"])
def test_old_checkpoint_loads_with_the_old_architecture(name: str) -> None:
    ckpt = torch.load(DATA / f"old_{name}.ckpt", weights_only=True)
    assert not set(LATER_MODEL_KEYS) & set(ckpt["hyper_parameters"])
    expected = torch.load(DATA / "old_outputs.pt", weights_only=True)[name]
    vae, _ = load_vae(DATA / f"old_{name}.ckpt")  # strict state-dict load
    with torch.no_grad():
        torch.testing.assert_close(vae.reconstruct_params(expected["x"]), expected["params"])
        torch.testing.assert_close(vae.embed(expected["x"])[0], expected["embed"])
    assert vae.downsampling == (4,) * vae.ndim


def test_module_resolves_auto_downsampling_into_the_checkpoint(tmp_path) -> None:
    module = VAEModule(
        ndim=3, patch_size=[4, 16, 16], widths=[4, 4, 8], latent_channels=2, global_dim=3,
        groups_per_scale=[1, 2, 1], voxel_size=[0.5, 0.1, 0.1], iwae_samples=0,
    )  # fmt: skip
    assert module.hparams.downsample == [[1, 2, 2], [1, 2, 2]]
    assert module.model.group_names == ["g", "z2", "z1_0", "z1_1", "z0"]
    path = tmp_path / "new.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    vae, _ = load_vae(path)
    assert vae.factors == ((1, 2, 2), (1, 2, 2)) and vae.global_dim == 3
    x = torch.rand(2, 1, 4, 16, 16) * 2 - 1
    module.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(vae.embed(x)[0], module.model.embed(x)[0])
        assert vae.embed(x)[0].shape == (2, 3)


def test_checkpoint_with_the_first_global_latent_design_loads_as_it_was() -> None:
    """``data/old_global2d.ckpt`` was written at commit 7fda7d5, when the global latent was
    a per-scale bias (no ``global_decoder``, ``global_norm`` or ``global_logvar_floor``);
    it must rebuild that design and compute what that code computed."""
    ckpt = torch.load(DATA / "old_global2d.ckpt", weights_only=True)
    assert "global_decoder" not in ckpt["hyper_parameters"]
    expected = torch.load(DATA / "old_global2d_outputs.pt", weights_only=True)
    vae, _ = load_vae(DATA / "old_global2d.ckpt")  # strict state-dict load
    assert vae.global_decoder == "bias"
    with torch.no_grad():
        torch.testing.assert_close(vae.reconstruct_params(expected["x"]), expected["params"])
        torch.testing.assert_close(vae.embed(expected["x"])[0], expected["embed"])
        torch.testing.assert_close(
            vae.decode_embedding(torch.ones(1, 3), (16, 16)), expected["decoded"]
        )


def test_new_modules_default_to_the_global_map_design() -> None:
    module = VAEModule(patch_size=16, widths=[4, 8], latent_channels=2, global_dim=3)
    assert module.hparams.global_decoder == "map"
    assert module.model.global_decoder == "map"
