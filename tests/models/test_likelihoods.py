"""Likelihoods: normalisation over the levels, closed forms, stability at the edges."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from cellvae.errors import ConfigError
from cellvae.models.likelihoods import make_likelihood


def _levels(bits: int) -> torch.Tensor:
    top = 2**bits - 1
    return torch.arange(top + 1, dtype=torch.float32) * (2.0 / top) - 1.0


def _random_params(lik, n: int, seed: int = 0, mean_scale: float = 1.5) -> torch.Tensor:
    """Random parameters ``(n, P*C)`` with wide means and log-scales from -9 to 3."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, lik.params_per_channel, lik.channels, generator=g)
    if getattr(lik, "n_mixtures", None):
        k = lik.n_mixtures
        mean_idx = slice(0, 1) if k == 1 else slice(k, 2 * k)
        scale_idx = slice(1, 2) if k == 1 else slice(2 * k, 3 * k)
        p[:, mean_idx] *= mean_scale
        p[:, scale_idx] = torch.rand(p[:, scale_idx].shape, generator=g) * 12.0 - 9.0
    return p.reshape(n, -1)


@pytest.mark.parametrize("name", ["dlogistic", "dmol"])
@pytest.mark.parametrize("bits", [1, 4, 8])
def test_discretized_probabilities_sum_to_one(name: str, bits: int) -> None:
    lik = make_likelihood(name, channels=1, bits=bits, n_mixtures=3)
    params = _random_params(lik, 64)
    levels = _levels(bits)
    # every level (rows) against every parameter set (columns): (L, 64) log-masses
    rows = params.repeat(len(levels), 1)
    logp = lik.log_prob(rows, levels.repeat_interleave(64)[:, None])
    total = torch.exp(logp.reshape(len(levels), 64)).sum(0)
    torch.testing.assert_close(total, torch.ones(64), atol=1e-5, rtol=0)


def test_discretized_probabilities_sum_to_one_at_16_bits() -> None:
    lik = make_likelihood("dmol", channels=1, bits=16, n_mixtures=2)
    params = _random_params(lik, 3, seed=5, mean_scale=0.5)
    levels = _levels(16).reshape(-1, 1)
    for row in params:
        logp = lik.log_prob(row.expand(len(levels), -1), levels)
        assert torch.isfinite(logp).all()
        total = torch.exp(logp.double()).sum()
        assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_bernoulli_probabilities_sum_to_one_and_match_sigmoid() -> None:
    lik = make_likelihood("bernoulli", channels=1, bits=1)
    logits = torch.tensor([[-3.0], [0.0], [2.5]])
    lp_pos = lik.log_prob(logits, torch.ones(3, 1))
    lp_neg = lik.log_prob(logits, -torch.ones(3, 1))
    torch.testing.assert_close(lp_pos, torch.log(torch.sigmoid(logits)))
    torch.testing.assert_close(torch.exp(lp_pos) + torch.exp(lp_neg), torch.ones(3, 1))


def test_gaussian_log_likelihood_matches_closed_form() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    mu, raw = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    pixel = make_likelihood("gaussian", channels=3, sigma_mode="pixel")
    lp = pixel.log_prob(torch.cat([mu, raw], dim=1), x)
    floor = math.log(0.1 * 2 / 255)  # a tenth of the 8-bit bin width
    log_sigma = floor + torch.nn.functional.softplus(raw - floor)
    torch.testing.assert_close(lp, Normal(mu, torch.exp(log_sigma)).log_prob(x))

    fixed = make_likelihood("gaussian", channels=3, sigma_mode="fixed", sigma=0.2)
    lp = fixed.log_prob(mu, x)
    expected = -((x - mu) ** 2) / (2 * 0.04) - math.log(0.2) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(lp, expected)
    assert not any(p.requires_grad for p in fixed.parameters())


def test_learned_sigma_is_a_parameter_per_channel() -> None:
    lik = make_likelihood("gaussian", channels=2, sigma_mode="learned", sigma=0.5)
    (log_sigma,) = list(lik.parameters())
    assert log_sigma.shape == (2,)
    x, mu = torch.zeros(1, 2, 3, 3), torch.full((1, 2, 3, 3), 0.3)
    lik.log_prob(mu, x).sum().backward()
    assert (log_sigma.grad != 0).all()


@pytest.mark.parametrize("name", ["dlogistic", "dmol"])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_values_and_gradients_finite_at_edges_and_extremes(name: str, bits: int) -> None:
    lik = make_likelihood(name, channels=1, bits=bits, n_mixtures=2)
    top = 2**bits - 1
    k = torch.tensor([0, 1, top // 2, top - 1, top], dtype=torch.float32)
    x = (k * 2.0 / top - 1.0).repeat_interleave(25)
    means = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4]).repeat(25)
    raw_scales = torch.tensor([-100.0, -9.0, 0.0, 9.0, 100.0]).repeat_interleave(5).repeat(5)
    kk = lik.n_mixtures
    logits = torch.zeros(len(x), kk if kk > 1 else 0)
    mixture_means = means[:, None].expand(-1, kk)
    scales = raw_scales[:, None].expand(-1, kk)
    p = torch.cat([logits, mixture_means, scales], dim=1)
    p.requires_grad_(True)
    lp = lik.log_prob(p, x[:, None])
    assert torch.isfinite(lp).all()
    assert (lp <= 1e-6).all()
    lp.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_tiny_bin_mass_uses_the_density_fallback() -> None:
    """Scale e^30 at 16 bits: mass at the mean is pdf(0) * bin width = width / (4 s)."""
    lik = make_likelihood("dlogistic", channels=1, bits=16)
    params = torch.tensor([[0.0, 30.0]])
    x = torch.tensor([[1.0 / 65535]])  # an interior level next to 0
    expected = math.log(lik.bin_width / 4.0) - 30.0
    assert lik.log_prob(params, x).item() == pytest.approx(expected, abs=1e-3)


def test_sharp_logistic_puts_all_mass_on_the_level() -> None:
    lik = make_likelihood("dlogistic", channels=1, bits=16, min_log_scale=-7.0)
    level = 2 * 1234 / 65535 - 1
    lp = lik.log_prob(torch.tensor([[level, -7.0]]), torch.tensor([[level]]))
    # bin half-width 1.5e-5 vs scale 9e-4: mass = tanh(h / 2s) ≈ h / 2s, closed form
    h, s = 1 / 65535, math.exp(-7.0 + math.log1p(math.exp(-7.0 + 7.0)))
    assert lp.item() == pytest.approx(math.log(math.tanh(h / (2 * s))), rel=1e-3)


@pytest.mark.parametrize("name", ["dlogistic", "dmol", "gaussian"])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_default_scale_floor_follows_the_bit_depth(name: str, bits: int) -> None:
    """At its floor a logistic on the level costs ~0 bits at any depth (a fixed -7 floor
    costs 0.04 bits at 8 bits, 2.9 at 12 and 6.9 at 16); the Gaussian floor is as far down."""
    lik = make_likelihood(name, channels=1, bits=bits, n_mixtures=1, sigma_mode="pixel")
    assert lik.min_log_scale == pytest.approx(math.log(0.1 * lik.bin_width))
    level = 2 * 100 / (2**bits - 1) - 1
    if name == "gaussian":
        return
    lp = lik.log_prob(torch.tensor([[level, -60.0]]), torch.tensor([[level]]))
    assert -lp.item() / math.log(2) < 0.02


def test_scale_floor_is_configurable() -> None:
    lik = make_likelihood("dlogistic", channels=1, bits=16, min_log_scale=-7.0)
    level = 2 * 100 / 65535 - 1
    lp = lik.log_prob(torch.tensor([[level, -60.0]]), torch.tensor([[level]]))
    assert -lp.item() / math.log(2) == pytest.approx(6.90, abs=0.01)  # the old cap
    with pytest.raises(ConfigError, match="min_log_scale"):
        make_likelihood("dmol", channels=1, min_log_scale=float("nan"))


@pytest.mark.parametrize("name", ["dlogistic", "dmol", "bernoulli"])
def test_samples_and_modes_land_on_the_level_grid(name: str) -> None:
    bits = 1 if name == "bernoulli" else 5
    lik = make_likelihood(name, channels=2, bits=bits, n_mixtures=3)
    torch.manual_seed(0)
    params = torch.randn(4, lik.out_channels, 8, 8) * 2
    top = 2**bits - 1
    for value in (lik.sample(params), lik.mode(params)):
        assert value.shape == (4, 2, 8, 8)
        k = (value + 1) * top / 2
        torch.testing.assert_close(k, torch.round(k))
        assert value.min() >= -1 and value.max() <= 1
    mean = lik.mean(params)
    assert mean.shape == (4, 2, 8, 8) and mean.abs().max() <= 1


def test_dlogistic_sample_histogram_matches_probabilities() -> None:
    lik = make_likelihood("dlogistic", channels=1, bits=2)
    params = torch.tensor([[0.1, math.log(0.4)]]).expand(40_000, -1)
    torch.manual_seed(0)
    draws = lik.sample(params)
    levels = _levels(2)
    freq = torch.stack([(draws == v).float().mean() for v in levels])
    probs = torch.exp(lik.log_prob(params[:4], levels[:, None]))[:, 0]
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)


def test_params_per_channel() -> None:
    assert make_likelihood("gaussian", 1, sigma_mode="fixed").params_per_channel == 1
    assert make_likelihood("gaussian", 1, sigma_mode="pixel").params_per_channel == 2
    assert make_likelihood("bernoulli", 1).params_per_channel == 1
    assert make_likelihood("dlogistic", 3).out_channels == 6
    assert make_likelihood("dmol", 2, n_mixtures=5).out_channels == 30
    assert make_likelihood("dlogistic", 1, bits=4).bin_width == pytest.approx(2 / 15)


def test_bad_options_raise_config_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"likelihood.*'gaussian'.*'dmol'"):
        make_likelihood("poisson", 1)
    for bits in (0, 17):
        with pytest.raises(ConfigError, match="bits"):
            make_likelihood("dmol", 1, bits=bits)
    with pytest.raises(ConfigError, match="sigma_mode"):
        make_likelihood("gaussian", 1, sigma_mode="global")
    with pytest.raises(ConfigError, match="n_mixtures"):
        make_likelihood("dmol", 1, n_mixtures=0)
