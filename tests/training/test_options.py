"""GPU-user options: channels-last, torch.compile and learning-rate decay in the module."""

from __future__ import annotations

import pytest
import torch

from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms
from tests.training.conftest import level_images, make_trainer


def test_channels_last_gives_the_same_numbers(tiny):
    """Same reconstruction (posterior means); draws differ only because ``randn_like`` fills
    a channels-last tensor in memory order."""
    x = level_images(2)
    params = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        module = VAEModule(**tiny, channels_last=channels_last)
        with torch.no_grad():
            params.append(module.model.reconstruct_params(module._input(x)))
        assert torch.isfinite(elbo_terms(module.model, module._input(x), 1.0).loss)
    weight = module.model.stem.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(params[0], params[1], atol=1e-5, rtol=1e-4)


def test_compile_trains_through_the_compiled_model_and_saves_plain_weights(
    tmp_path, tiny, loader, monkeypatch
):
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    module = VAEModule(**tiny, compile=True)
    assert compiled == [module.model]
    make_trainer(tmp_path, max_steps=1).fit(module, loader)
    assert all(k.startswith(("model.", "skipped")) for k in module.state_dict())


def test_cosine_decay_reaches_the_floor_after_warm_up(tmp_path, tiny, loader):
    module = VAEModule(
        **{**tiny, "lr_warmup_steps": 2},
        lr_schedule="cosine",
        lr_decay_steps=3,
        lr_decay_factor=0.1,
    )
    make_trainer(tmp_path, max_steps=6).fit(module, loader)
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1)
