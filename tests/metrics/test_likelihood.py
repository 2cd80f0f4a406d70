"""bits/dim, IWAE bound and active units against closed forms and hand-made inputs."""

import math

import pytest
import torch

from cellvae.metrics.likelihood import (
    active_units,
    activity_from_moments,
    bits_per_dim,
    dequantize,
    discretization_offset,
    iwae_bound,
    latent_activity,
    unit_moments,
)


def test_bits_per_dim_of_uniform_discrete_likelihood_is_bits():
    # a uniform distribution over 2**8 levels costs exactly 8 bits per dimension
    nll = torch.tensor(8 * math.log(2.0))
    assert float(bits_per_dim(nll, discrete=True)) == pytest.approx(8.0)


def test_continuous_bits_per_dim_gets_bin_width_offset():
    # uniform density 1/2 on [-1, 1] with 2**8 levels: bin probability = (1/2)·(2/255) = 1/255
    width = 2.0 / 255
    nll_density = math.log(2.0)
    expected = math.log2(255.0)
    assert bits_per_dim(nll_density, discrete=False, bin_width=width) == pytest.approx(expected)


def _toy_log_weights(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """p(z)=N(0,1), p(x|z)=N(z,1), deliberately poor q(z|x)=N(x/4, 1): log-weights (K, B)."""
    normal = torch.distributions.Normal
    q = normal(x / 4, torch.ones_like(x))
    z = q.mean + torch.randn((k, *x.shape), generator=gen)
    return normal(z, 1.0).log_prob(x) + normal(0.0, 1.0).log_prob(z) - q.log_prob(z)


def test_iwae_with_one_sample_equals_the_elbo_estimate():
    log_w = torch.tensor([[-3.0, -1.5, -7.25]])
    assert torch.equal(iwae_bound(log_w), log_w[0])


def test_iwae_tightens_between_elbo_and_log_likelihood():
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 64)
    log_px = torch.distributions.Normal(0.0, math.sqrt(2.0)).log_prob(x)  # closed form
    elbo = _toy_log_weights(x.expand(4000, -1), 1, gen)[0].mean(0)
    iwae = iwae_bound(_toy_log_weights(x.expand(4000, -1), 16, gen)).mean(0)
    assert (iwae > elbo + 0.05).all()
    assert (iwae <= log_px + 0.02).all()


def test_active_units_counts_dimensions_with_varying_means():
    # dim 0 varies (var 1), dim 1 barely (var 0.0025), dim 2 is constant
    means = torch.tensor(
        [[1.0, 0.05, 3.0], [-1.0, -0.05, 3.0], [1.0, 0.05, 3.0], [-1.0, -0.05, 3.0]]
    )
    assert latent_activity(means).tolist() == pytest.approx([1.0, 0.0025, 0.0])
    assert active_units(means) == 1
    assert active_units(means, threshold=0.001) == 2


def test_streamed_activity_matches_batch_activity(rng):
    means = torch.from_numpy(rng.normal(size=(50, 6))).float()
    streamed = activity_from_moments(means.sum(0), (means**2).sum(0), 50)
    torch.testing.assert_close(streamed, latent_activity(means), atol=1e-5, rtol=1e-4)


def test_dequantize_spreads_each_value_uniformly_over_its_bin():
    torch.manual_seed(0)
    w = 0.25
    x = torch.full((100_000,), 0.5)
    y = dequantize(x, w)
    noise = y - x
    assert noise.min() >= -w / 2 and noise.max() <= w / 2
    assert noise.min() < -0.49 * w and noise.max() > 0.49 * w  # the whole bin is reached
    assert float(noise.mean()) == pytest.approx(0.0, abs=4 * w / 12**0.5 / 100_000**0.5)
    assert float(noise.var()) == pytest.approx(w**2 / 12, rel=0.02)  # uniform on [-w/2, w/2]


def test_discretization_offset_is_minus_log_width_and_needs_a_positive_width():
    assert discretization_offset(2.0 / 255) == pytest.approx(math.log(127.5))
    assert discretization_offset(1.0) == 0.0
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="bin_width must be positive"):
            discretization_offset(bad)
    # a discrete NLL gets no offset whatever the bin width
    assert bits_per_dim(math.log(2.0), discrete=True, bin_width=0.01) == pytest.approx(1.0)


def test_iwae_bound_of_several_samples_is_the_log_mean_weight():
    log_w = torch.log(torch.tensor([[1.0, 4.0], [3.0, 2.0], [5.0, 0.5]]))  # (K=3, B=2)
    torch.testing.assert_close(iwae_bound(log_w), torch.log(torch.tensor([3.0, 6.5 / 3])))


def test_unit_moments_pool_a_spatial_latent_per_channel():
    # (B=2, c=2, Y=1, X=2): channel 0 holds 1, 2, 3, 4 over its items, channel 1 is 5 everywhere
    means = torch.tensor([[[[1.0, 2.0]], [[5.0, 5.0]]], [[[3.0, 4.0]], [[5.0, 5.0]]]])
    total, total_sq, count = unit_moments(means)
    assert count == 4
    torch.testing.assert_close(total, torch.tensor([10.0, 20.0]))
    torch.testing.assert_close(total_sq, torch.tensor([30.0, 100.0]))
    torch.testing.assert_close(
        activity_from_moments(total, total_sq, count), torch.tensor([1.25, 0.0])
    )
    # a one-dimensional spatial latent (B=2, c=2, L=2) pools its positions the same way
    total, total_sq, count = unit_moments(means.reshape(2, 2, 2))
    assert count == 4
    torch.testing.assert_close(total, torch.tensor([10.0, 20.0]))
    # a vector latent (B, D): one unit per column, B items
    total, total_sq, count = unit_moments(torch.tensor([[1.0, -2.0], [3.0, 2.0], [5.0, 0.0]]))
    assert count == 3
    torch.testing.assert_close(total, torch.tensor([9.0, 0.0]))
    torch.testing.assert_close(total_sq, torch.tensor([35.0, 8.0]))


def test_streamed_activity_never_goes_negative():
    # rounding can make Σμ²/n a hair below (Σμ/n)²: the variance is clamped at zero
    activity = activity_from_moments(torch.tensor([3.0]), torch.tensor([2.9999]), 3)
    assert activity.item() == 0.0


def test_latent_activity_keeps_the_dtype_and_counts_strictly_above_the_threshold():
    means = torch.tensor([[0.5], [-0.5]], dtype=torch.float32)  # variance exactly 0.25
    assert latent_activity(means).dtype == torch.float32
    assert active_units(means, threshold=0.25) == 0
    assert active_units(means, threshold=0.2499) == 1
