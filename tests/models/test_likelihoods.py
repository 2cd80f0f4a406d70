"""Likelihoods: normalisation over the levels, closed forms, stability at the edges."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from cellvae.errors import ConfigError
from cellvae.models.likelihoods import (
    Bernoulli,
    DiscretizedLogisticMixture,
    Gaussian,
    check_bits,
    default_min_log_scale,
    make_likelihood,
    quantize,
)


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


def test_check_bits_refuses_non_integers_and_bools_and_accepts_the_range() -> None:
    for bad in (2.5, True):
        with pytest.raises(ConfigError, match=r"bits: .* is not an integer; allowed \[1, 16\]"):
            check_bits(bad)
    for good in (1, 16, 8.0):
        check_bits(good)


def test_default_floor_and_quantize_known_values() -> None:
    assert default_min_log_scale(4) == pytest.approx(math.log(0.1 * 2 / 15))
    with pytest.raises(ConfigError, match="bits"):
        default_min_log_scale(0)
    # 2 bits: levels -1, -1/3, 1/3, 1; values snap to the nearest, out-of-range ones clamp
    x = torch.tensor([-5.0, -0.7, -0.6, 0.0001, 0.5, 0.9, 3.0])
    expected = torch.tensor([-1.0, -1.0, -1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])
    torch.testing.assert_close(quantize(x, 2), expected)


@pytest.mark.parametrize("ndim", [2, 3])
def test_head_is_a_one_by_one_convolution_that_stays_float32_under_autocast(ndim: int) -> None:
    lik = make_likelihood("dmol", channels=2, n_mixtures=3)
    head = lik.head(ndim, 5)
    assert head.in_channels == 5 and head.out_channels == 18
    assert head.kernel_size == (1,) * ndim
    torch.manual_seed(0)
    x = torch.randn(2, 5, *(3,) * ndim).to(torch.bfloat16)
    conv = {2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[ndim]
    reference = conv(x.double(), head.weight.double(), head.bias.double())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = head(x)  # a bf16 input is cast up, not the weights down
    assert out.dtype == torch.float32
    # float32 agrees with float64 to ~1e-6; bf16 arithmetic is off by ~1e-2
    torch.testing.assert_close(out.double(), reference, atol=1e-5, rtol=0)


def test_gaussian_mean_and_mode_are_mu_clamped_to_the_data_range() -> None:
    lik = make_likelihood("gaussian", channels=1, sigma_mode="pixel")
    mu = torch.tensor([[-3.0], [-0.25], [0.6], [1.5]])
    params = torch.cat([mu, torch.zeros_like(mu)], dim=1)
    expected = torch.tensor([[-1.0], [-0.25], [0.6], [1.0]])
    torch.testing.assert_close(lik.mean(params), expected)
    torch.testing.assert_close(lik.mode(params), expected)


@pytest.mark.parametrize("sigma_mode", ["fixed", "pixel"])
def test_gaussian_samples_have_the_moments_of_the_likelihood(sigma_mode: str) -> None:
    lik = make_likelihood("gaussian", channels=2, sigma_mode=sigma_mode, sigma=0.05)
    n = 20_000
    mu = torch.tensor([-0.3, 0.2]).repeat(n, 1)
    if sigma_mode == "pixel":  # per-pixel log-sigmas well above the floor: sigma 0.1 and 0.2
        raw = torch.log(torch.tensor([0.1, 0.2])).repeat(n, 1)
        params, sigma = torch.cat([mu, raw], dim=1), torch.tensor([0.1, 0.2])
    else:
        params, sigma = mu, torch.tensor([0.05, 0.05])
    torch.manual_seed(0)
    draws = lik.sample(params)
    assert draws.shape == (n, 2)
    torch.testing.assert_close(draws.mean(0), mu[0], atol=4 * 0.2 / n**0.5, rtol=0)
    torch.testing.assert_close(draws.std(0), sigma, atol=0, rtol=0.03)


def test_gaussian_samples_are_clamped_to_the_data_range() -> None:
    lik = make_likelihood("gaussian", channels=1, sigma_mode="fixed", sigma=0.5)
    torch.manual_seed(0)
    draws = lik.sample(torch.full((5000, 1), 0.9))
    assert draws.max() == 1.0 and draws.min() >= -1.0
    assert (draws == 1.0).float().mean() == pytest.approx(0.42, abs=0.03)  # P(N(0.9, .5) > 1)


def _dmol_params(logits, means, log_scales) -> torch.Tensor:
    """One pixel, one channel: ``(1, 3K)`` parameters of a K-component mixture."""
    return torch.tensor([[*logits, *means, *log_scales]])


def test_dmol_mean_is_the_weighted_mean_of_the_clipped_component_means() -> None:
    lik = make_likelihood("dmol", channels=1, bits=8, n_mixtures=3)
    logits = [0.0, math.log(2.0), math.log(5.0)]  # weights 1/8, 2/8, 5/8
    params = _dmol_params(logits, [-0.5, 0.2, 1.7], [-3.0, -3.0, -3.0])
    expected = (1 * -0.5 + 2 * 0.2 + 5 * 1.0) / 8  # the last mean clipped to 1
    assert lik.mean(params).item() == pytest.approx(expected, abs=1e-6)
    params = _dmol_params(logits, [-3.0, -2.0, -4.0], [-3.0, -3.0, -3.0])
    assert lik.mean(params).item() == pytest.approx(-1.0)
    params = _dmol_params(logits, [-1.7, 0.2, 0.5], [-3.0, -3.0, -3.0])  # first clipped to -1
    assert lik.mean(params).item() == pytest.approx((-1.0 + 2 * 0.2 + 5 * 0.5) / 8, abs=1e-6)


def test_dmol_mode_is_the_level_nearest_the_heaviest_components_mean() -> None:
    lik = make_likelihood("dmol", channels=1, bits=2, n_mixtures=3)
    params = _dmol_params([0.0, 2.0, 1.0], [-0.9, 0.4, 0.9], [-3.0, -3.0, -3.0])
    assert lik.mode(params).item() == pytest.approx(1 / 3)
    params = _dmol_params([3.0, 2.0, 1.0], [-0.9, 0.4, 0.9], [-3.0, -3.0, -3.0])
    assert lik.mode(params).item() == pytest.approx(-1.0)


def test_dmol_sample_histogram_matches_probabilities() -> None:
    """Component choice, per-component scale and the logistic draw all show in the histogram
    of a 3-bit, 3-component mixture with unequal weights, means and scales."""
    lik = make_likelihood("dmol", channels=1, bits=3, n_mixtures=3)
    params = _dmol_params([0.5, -0.5, 0.0], [-0.6, 0.1, 0.7], [math.log(0.05), -1.5, -2.5])
    torch.manual_seed(0)
    draws = lik.sample(params.expand(60_000, -1))
    levels = _levels(3)
    freq = torch.stack([(draws == v).float().mean() for v in levels])
    probs = torch.exp(lik.log_prob(params.expand(8, -1), levels[:, None]))[:, 0]
    torch.testing.assert_close(freq, probs, atol=0.008, rtol=0)


def test_make_likelihood_passes_every_option_on() -> None:
    g = make_likelihood("gaussian", 2, bits=12, sigma_mode="learned", sigma=0.3, min_log_scale=-4)
    assert isinstance(g, Gaussian) and g.bits == 12 and g.channels == 2
    assert g.sigma_mode == "learned" and g.min_log_scale == -4.0
    torch.testing.assert_close(g.log_sigma.detach(), torch.full((2,), math.log(0.3)))
    b = make_likelihood("bernoulli", 3, bits=1)
    assert isinstance(b, Bernoulli) and b.bits == 1 and b.channels == 3
    d = make_likelihood("dmol", 1, bits=10, n_mixtures=4, min_log_scale=-5.5)
    assert isinstance(d, DiscretizedLogisticMixture)
    assert (d.n_mixtures, d.bits, d.min_log_scale, d.channels) == (4, 10, -5.5, 1)
    single = make_likelihood("dlogistic", 1, bits=6, n_mixtures=4)
    assert single.n_mixtures == 1 and single.params_per_channel == 2
    assert single.min_log_scale == pytest.approx(default_min_log_scale(6))
    with pytest.raises(ConfigError, match="channels"):
        make_likelihood("gaussian", 0)
    with pytest.raises(ConfigError, match="sigma"):
        make_likelihood("gaussian", 1, sigma=0.0)
    with pytest.raises(ConfigError, match="bits"):
        make_likelihood("bernoulli", 1, bits=2.5)


def test_gaussian_defaults_are_a_fixed_sigma_of_a_tenth_at_8_bits() -> None:
    lik = Gaussian(1)
    assert (lik.bits, lik.sigma_mode, lik.params_per_channel) == (8, "fixed", 1)
    assert lik.log_sigma.item() == pytest.approx(math.log(0.1))
    assert lik.min_log_scale == pytest.approx(default_min_log_scale(8))
    with pytest.raises(ConfigError, match=r"^sigma_mode: 'global'"):
        Gaussian(1, sigma_mode="global")
    with pytest.raises(ConfigError, match=r"^sigma: 0\.0 must be > 0"):
        Gaussian(1, sigma=0.0)


def test_bernoulli_mean_and_mode_known_values() -> None:
    lik = make_likelihood("bernoulli", channels=1, bits=1)
    logits = torch.tensor([[-2.0], [0.5], [3.0]])
    torch.testing.assert_close(lik.mode(logits), torch.tensor([[-1.0], [1.0], [1.0]]))
    torch.testing.assert_close(lik.mean(logits), 2 * torch.sigmoid(logits) - 1)


def test_constructor_and_factory_defaults() -> None:
    assert Bernoulli(1).bits == 8
    d = DiscretizedLogisticMixture(1)
    assert (d.bits, d.n_mixtures) == (8, 5)
    assert make_likelihood("dmol", 1).n_mixtures == 5
    g = make_likelihood("gaussian", 1)
    assert g.sigma_mode == "fixed" and g.log_sigma.item() == pytest.approx(math.log(0.1))


def test_bad_options_name_their_field_first() -> None:
    with pytest.raises(ConfigError, match=r"^likelihood: 'poisson' is not allowed"):
        make_likelihood("poisson", 1)
    with pytest.raises(ConfigError, match=r"^bits: 0 is out of range"):
        make_likelihood("dmol", 1, bits=0)
    with pytest.raises(ConfigError, match=r"^channels: 0 is out of range; allowed \[1, inf\]"):
        make_likelihood("dmol", 0)
    with pytest.raises(ConfigError, match=r"^n_mixtures: 0 is out of range"):
        make_likelihood("dmol", 1, n_mixtures=0)


def test_dmol_channels_are_independent() -> None:
    """Two channels score like two one-channel mixtures (parameter-major layout)."""
    two = make_likelihood("dmol", channels=2, bits=5, n_mixtures=3)
    one = make_likelihood("dmol", channels=1, bits=5, n_mixtures=3)
    torch.manual_seed(0)
    params = torch.randn(4, two.out_channels, 3, 3)
    x = quantize(torch.rand(4, 2, 3, 3) * 2 - 1, 5)
    lp = two.log_prob(params, x)
    p = params.reshape(4, 9, 2, 3, 3)  # (B, P, C, Y, X)
    for c in range(2):
        torch.testing.assert_close(lp[:, c], one.log_prob(p[:, :, c], x[:, c : c + 1])[:, 0])
