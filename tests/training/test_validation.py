"""Validation metrics: active units per latent unit (a channel of a spatial group), collapse."""

from __future__ import annotations

import pytest
import torch

from cellvae.metrics.likelihood import unit_moments
from cellvae.training.module import VAEModule
from tests.training.conftest import make_trainer


def test_unit_moments_pool_a_channel_over_images_and_positions():
    means = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    total, total_sq, n = unit_moments(means)
    assert n == 2 * 4 * 4
    expected = means.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(total, expected.sum(1))
    torch.testing.assert_close(total_sq, (expected**2).sum(1))
    vector = torch.randn(5, 7)
    total, _, n = unit_moments(vector)
    assert n == 5 and total.shape == (7,)


def test_active_units_count_channels_not_positions(tmp_path, tiny, loader):
    # two groups of 2 channels each; the 16x16 patch has 8x8 and 4x4 latent positions
    module = VAEModule(**tiny, active_threshold=0.0)
    trainer = make_trainer(tmp_path, limit_val_batches=2)
    trainer.validate(module, loader, verbose=False)
    metrics = trainer.callback_metrics
    assert float(metrics["val/active_units/z0"]) == 2
    assert float(metrics["val/active_units/z1"]) == 2
    assert float(metrics["val/active_units"]) == 4


def test_validation_warns_when_the_posterior_collapses(tmp_path, tiny, loader):
    # the warning is decided by information (tests/training/test_collapse_advice.py), not by
    # the variance threshold, which still sets the logged active-unit count
    module = VAEModule(**tiny, active_threshold=1e9)
    with torch.no_grad():
        for stage in module.model.stages:  # constant posterior means: no information
            stage.posterior.c4.weight.zero_()
            stage.posterior.c4.bias.zero_()
    trainer = make_trainer(tmp_path, limit_val_batches=1)
    with pytest.warns(UserWarning, match="posterior collapse.*no latent unit carries information"):
        trainer.validate(module, loader, verbose=False)
    assert float(trainer.callback_metrics["val/active_units"]) == 0
