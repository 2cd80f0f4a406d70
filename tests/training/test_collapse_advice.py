"""The collapse warning's advice applies to the run it looks at (issue 23, item 12)."""

from __future__ import annotations

import pytest
import torch

from cellvae.training.collapse import collapse_advice
from cellvae.training.module import VAEModule
from tests.training.conftest import make_trainer

PRESET = {
    "beta": 1.0, "beta_schedule": "linear", "beta_warmup_steps": 100, "free_bits": 0.0,
    "global_dim": 32, "global_norm": "none", "latent_channels": 4,
}  # fmt: skip


def test_a_run_that_had_a_warm_up_is_not_told_to_warm_up():
    advice = collapse_advice(PRESET, steps=300)
    assert "warm up" not in advice and "beta_schedule" not in advice
    assert "stopped at step 300" in advice and "--trainer.max_steps" in advice
    assert "model.free_bits: 2" in advice and "model.beta: 0.5" in advice


def test_advice_names_only_what_the_run_did_not_do():
    done = PRESET | {"free_bits": 3.0, "beta": 0.25, "global_norm": "batch", "latent_channels": 1}
    advice = collapse_advice(done, steps=5000, embedding=True)
    assert "train longer" not in advice and "model.beta:" not in advice
    assert "model.free_bits: 6" in advice  # raise what it had
    assert "global_norm" not in advice and "latent_channels" not in advice
    assert "warm up the KL" in collapse_advice({"beta_schedule": "constant"}, 5000)
    assert "let the KL warm-up finish" in collapse_advice(PRESET | {"beta_warmup_steps": 500}, 300)


def test_embedding_advice_names_the_global_latent_and_the_spatial_share():
    advice = collapse_advice(PRESET, steps=None, embedding=True)
    assert "model.global_norm: batch" in advice and "model.latent_channels: 2" in advice
    assert "train longer" not in advice  # unknown length: no claim about it


def _collapsed(module: VAEModule) -> VAEModule:
    """Every posterior mean constant (the last posterior layers zeroed): no information."""
    with torch.no_grad():
        for stage in module.model.stages:
            stage.posterior.c4.weight.zero_()
            stage.posterior.c4.bias.zero_()
    return module


def test_validation_warns_with_advice_for_this_run(tmp_path, tiny, loader):
    module = _collapsed(VAEModule(**tiny, beta_schedule="linear", beta_warmup_steps=50))
    trainer = make_trainer(tmp_path, limit_val_batches=1)
    with pytest.warns(UserWarning, match="posterior collapse at step 0") as record:
        trainer.validate(module, loader, verbose=False)
    message = next(str(w.message) for w in record if "posterior collapse" in str(w.message))
    assert "no latent unit carries information" in message
    assert "warm up the KL" not in message and "let the KL warm-up finish" in message
    assert float(trainer.callback_metrics["val/informative_units"]) == 0
    assert float(trainer.callback_metrics["val/information_nats/z0"]) == 0
