"""``VAE.local_summary``: each spatial group's posterior means pooled per channel, in order."""

from __future__ import annotations

import torch
from torch import nn

from cellvae.models import FlatVAE, HierarchicalVAE, make_likelihood


class _KnownPosterior(nn.Module):
    """A posterior head whose mean is ``c + 1`` plus a ±``2(c + 1)`` checkerboard in channel
    ``c`` (spatial mean ``c + 1``, standard deviation ``2(c + 1)``), log-variance 0."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, hf: torch.Tensor) -> torch.Tensor:
        side = hf.shape[2:]
        grid = torch.meshgrid(*(torch.arange(s) for s in side), indexing="ij")
        sign = (sum(grid) % 2) * 2.0 - 1.0  # ±1, as many of each on an even grid
        level = torch.arange(1, self.channels + 1, dtype=hf.dtype).view(-1, *[1] * len(side))
        mean = level + 2 * level * sign
        mean = mean.expand(hf.shape[0], -1, *side)
        return torch.cat([mean, torch.zeros_like(mean)], 1)


def _model(global_dim: int) -> HierarchicalVAE:
    torch.manual_seed(0)
    lik = make_likelihood("dlogistic", 1, bits=8)
    model = HierarchicalVAE(
        2, 1, lik, widths=(8, 8, 16), latent_channels=(2, 3, 4), global_dim=global_dim
    )
    for stage in model.stages:
        stage.posterior = _KnownPosterior(stage.latent_channels)
    return model.eval()


def _expected(channels: list[int]) -> torch.Tensor:
    """Per group: means 1..c, then standard deviations 2..2c."""
    parts = []
    for c in channels:
        level = torch.arange(1, c + 1, dtype=torch.float32)
        parts += [level, 2 * level]
    return torch.cat(parts)


def test_summary_pools_each_spatial_group_in_decoding_order_without_the_global_code():
    model = _model(global_dim=5)
    assert model.group_names[0] == "g"
    summary = model.local_summary(torch.rand(3, 1, 16, 16) * 2 - 1)
    channels = [model.stages[i].latent_channels for _, i in model.units if i is not None]
    assert summary.shape == (3, 2 * sum(channels))
    torch.testing.assert_close(summary, _expected(channels).expand(3, -1))


def test_without_a_global_latent_the_top_group_is_summarised_too():
    model = _model(global_dim=0)
    summary = model.local_summary(torch.rand(2, 1, 16, 16) * 2 - 1)
    assert summary.shape == (2, 2 * (2 + 3 + 4))
    torch.testing.assert_close(summary[0], _expected([4, 3, 2]))


def test_summary_follows_the_input():
    torch.manual_seed(0)
    lik = make_likelihood("dlogistic", 1, bits=8)
    model = HierarchicalVAE(2, 1, lik, widths=(8, 16), latent_channels=2, global_dim=4).eval()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    out = model.top_down(model.encode(x), 2, (16, 16), use_mean=True)[3][1].mean
    flat = out.flatten(2)
    reference = torch.cat([flat.mean(2), flat.std(2, correction=0)], 1)
    torch.testing.assert_close(model.local_summary(x)[:, : reference.shape[1]], reference)
    assert not torch.allclose(model.local_summary(x)[0], model.local_summary(x)[1])


def test_a_flat_model_has_no_local_summary():
    model = FlatVAE(2, 1, make_likelihood("bernoulli", 1), patch_size=(16, 16), latent_dim=4)
    assert model.local_summary(torch.zeros(3, 1, 16, 16)).shape == (3, 0)
