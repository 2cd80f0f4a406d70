"""DiagonalGaussian and free bits against closed forms and Monte Carlo estimates."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from cellvae.models.latents import DiagonalGaussian, free_bits


def _gaussian(seed: int, shape=(4, 6)) -> DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    return DiagonalGaussian(torch.randn(shape, generator=g), torch.randn(shape, generator=g))


def test_kl_standard_normal_matches_closed_form() -> None:
    q = DiagonalGaussian(torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.0, math.log(4.0), -1.0]))
    # 0.5 * (m^2 + v - 1 - log v), by hand
    expected = torch.tensor([0.0, 0.5 * (1 + 4 - 1 - math.log(4.0)), 0.5 * (4 + math.exp(-1))])
    torch.testing.assert_close(q.kl_standard_normal(), expected)


def test_kl_between_gaussians_matches_torch_distributions() -> None:
    q, p = _gaussian(0), _gaussian(1)
    expected = kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std))
    torch.testing.assert_close(q.kl(p), expected)
    assert (q.kl(p) >= 0).all()


def test_kl_of_a_distribution_with_itself_is_zero() -> None:
    q = _gaussian(2)
    torch.testing.assert_close(q.kl(q), torch.zeros_like(q.mean))


def test_kl_matches_monte_carlo_estimate() -> None:
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.tensor([0.7, -0.3]), torch.tensor([-0.5, 0.4]))
    p = DiagonalGaussian(torch.tensor([0.2, 0.1]), torch.tensor([0.3, -0.2]))
    z = q.mean + q.std * torch.randn(200_000, 2)
    estimate = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(estimate, q.kl(p), atol=0.01, rtol=0.0)
    standard = DiagonalGaussian(torch.zeros(2), torch.zeros(2))
    estimate0 = (q.log_prob(z) - standard.log_prob(z)).mean(0)
    torch.testing.assert_close(estimate0, q.kl_standard_normal(), atol=0.01, rtol=0.0)


def test_log_prob_matches_torch_normal() -> None:
    q = _gaussian(3)
    z = torch.randn(4, 6)
    torch.testing.assert_close(q.log_prob(z), Normal(q.mean, q.std).log_prob(z))


def test_rsample_has_the_right_moments_and_temperature_zero_is_the_mean() -> None:
    torch.manual_seed(1)
    q = DiagonalGaussian(torch.full((100_000,), 2.0), torch.full((100_000,), math.log(0.25)))
    z = q.rsample()
    assert abs(z.mean().item() - 2.0) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01
    assert torch.equal(q.rsample(temperature=0.0), q.mean)


def test_free_bits_clamps_batch_mean_and_keeps_gradient_above_lambda() -> None:
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]], requires_grad=True)
    total = free_bits(kl, 0.5)  # batch means 0.2 -> 0.5 (clamped), 3.0 -> 3.0
    assert total.item() == pytest.approx(3.5)
    total.backward()
    torch.testing.assert_close(kl.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))


def test_free_bits_zero_is_the_plain_mean() -> None:
    kl = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert free_bits(kl, 0.0).item() == pytest.approx(5.0)
