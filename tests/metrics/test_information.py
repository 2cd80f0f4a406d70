"""Information carried by a latent: known answers for Gaussian channels and a lookup code."""

from __future__ import annotations

import math

import pytest
import torch

from cellvae.metrics.information import (
    INFORMATIVE_NATS,
    group_information,
    information_from_moments,
    informative_units,
    mutual_information,
    unit_information,
)


def test_unit_information_is_the_gaussian_channel_capacity():
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(20000, 1, generator=gen)
    means = torch.cat([signal * 2.0, signal * 0.01, torch.zeros(20000, 1)], dim=1)
    logvars = torch.log(torch.tensor([[1.0, 1e-6, 1.0]])).expand(20000, 3)
    info = unit_information(means, logvars)
    # 1/2 log(1 + 4 / 1); 1/2 log(1 + 1e-4 / 1e-6); nothing
    expected = torch.tensor([0.5 * math.log(5.0), 0.5 * math.log(101.0), 0.0], dtype=info.dtype)
    torch.testing.assert_close(info, expected, rtol=0.02, atol=1e-6)


def test_a_tiny_but_precise_unit_is_informative_and_a_wide_varying_one_is_not():
    """What a variance cut gets wrong both ways: the issue's "0 active" unit with mean
    variance 0.0078 and a narrow posterior carries information; a unit whose mean is pinned
    to unit variance but whose posterior is 100 times wider carries little."""
    gen = torch.Generator().manual_seed(1)
    small = torch.randn(4000, 1, generator=gen) * math.sqrt(0.0078)
    wide = torch.randn(4000, 1, generator=gen)
    means = torch.cat([small, wide], 1)
    logvars = torch.log(torch.tensor([[1e-4, 100.0]])).expand(4000, 2)
    assert (means.var(0) > 0.01).tolist() == [False, True]  # the old active-unit test
    assert unit_information(means, logvars)[0] > 1.0
    assert unit_information(means, logvars)[1] < 0.01
    assert informative_units(means, logvars) == 1


def test_information_from_moments_has_no_division_by_zero():
    info = information_from_moments(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 1.0]))
    assert info[0] == 0 and info[1] == pytest.approx(math.log(2.0))


def test_mutual_information_of_a_lookup_code_is_log_n_and_of_a_constant_code_zero():
    n = 50
    distinct = torch.eye(n) * 100.0  # far apart, narrow: the code names the input
    narrow = torch.full((n, n), math.log(1e-4))
    assert mutual_information(distinct, narrow) == pytest.approx(math.log(n), abs=1e-6)
    same = torch.zeros(n, 4)
    assert mutual_information(same, torch.zeros(n, 4), draws=4) == pytest.approx(0.0, abs=1e-9)
    assert mutual_information(distinct[:1], narrow[:1, :]) == 0.0


def test_mutual_information_of_a_gaussian_channel_approaches_its_capacity():
    gen = torch.Generator().manual_seed(0)
    n = 800
    means = torch.randn(n, 1, generator=gen) * math.sqrt(3.0)  # SNR 3: 1/2 log 4 = 0.693
    logvars = torch.zeros(n, 1)
    estimate = mutual_information(means, logvars, draws=4, generator=gen)
    assert estimate == pytest.approx(0.5 * math.log(4.0), abs=0.08)


def test_a_spatial_channel_carries_the_information_of_all_its_positions():
    """A noisy-data model's spatial channel: each position tells little (signal variance 0.01
    against a unit posterior variance, 0.005 nats), the 8x8 positions together 64 times that."""
    gen = torch.Generator().manual_seed(0)
    means = torch.randn(4000, 2, 8, 8, generator=gen) * torch.tensor([0.1, 0.0]).reshape(1, 2, 1, 1)
    logvars = torch.zeros(4000, 2, 8, 8)
    info = group_information(means, logvars)
    per_position = 0.5 * math.log(1.01)
    torch.testing.assert_close(
        info, torch.tensor([64 * per_position, 0.0], dtype=info.dtype), rtol=0.05, atol=1e-6
    )
    assert info[0] > INFORMATIVE_NATS > unit_information(means[:, :, 0, 0], logvars[:, :, 0, 0])[0]
    vector = torch.randn(100, 3, generator=gen)
    torch.testing.assert_close(
        group_information(vector, vector * 0), unit_information(vector, vector * 0)
    )
