"""Grassberger–Procaccia correlation dimension on sets of known dimension."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.signal import lfilter

from cellvae.errors import ConfigError
from cellvae.metrics.dimension import correlation_dimension, correlation_sum


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_uniform_points_have_the_dimension_of_their_support(rng, dim):
    points = rng.uniform(size=(3000, dim))
    result = correlation_dimension(points, max_points=3000)
    assert result.dimension == pytest.approx(dim, abs=0.15)
    assert result.fit_range[0] < result.fit_range[1]


def test_a_line_embedded_in_3d_has_dimension_one(rng):
    t = rng.uniform(size=(2000, 1))
    points = t * np.array([[1.0, 2.0, -0.5]]) + 3.0
    assert correlation_dimension(points).dimension == pytest.approx(1.0, abs=0.1)


def test_correlation_sum_counts_pairs_by_hand():
    # four points on a line: distances 1, 2, 3 (pairs 0-1, 0-2, 0-3), 1, 2 (1-2, 1-3), 1 (2-3)
    points = np.array([[0.0], [1.0], [2.0], [3.0]])
    c, n_pairs = correlation_sum(points, np.array([0.5, 1.5, 2.5, 3.5]))
    assert n_pairs == 6
    np.testing.assert_allclose(c, [0, 3 / 6, 5 / 6, 1])
    # a Theiler window of 1 drops the neighbours in time: pairs 0-2, 0-3, 1-3 remain
    c, n_pairs = correlation_sum(points, np.array([0.5, 1.5, 2.5, 3.5]), theiler=1)
    assert n_pairs == 3
    np.testing.assert_allclose(c, [0, 0, 2 / 3, 1])


def test_theiler_window_removes_the_bias_of_slowly_varying_samples(rng):
    # AR(1) noise in 3D (correlation time 100 samples) fills 3D, but temporal neighbours
    # crowd the small radii and flatten the slope unless the Theiler window drops them
    phi, n = 0.99, 3000
    x = lfilter([1.0], [1.0, -phi], rng.normal(size=(n + 1000, 3)), axis=0)[1000:]
    plain = correlation_dimension(x, theiler=0, max_points=n)
    windowed = correlation_dimension(x, theiler=100, max_points=n)
    assert plain.dimension < 2.87
    assert windowed.dimension == pytest.approx(3.0, abs=0.15)
    assert windowed.n_pairs < plain.n_pairs


def test_explicit_range_and_bad_input():
    rng = np.random.default_rng(0)
    points = rng.uniform(size=(2000, 2))
    result = correlation_dimension(points, r_range=(0.01, 0.05))
    assert 0.01 <= result.fit_range[0] and result.fit_range[1] <= 0.05
    assert result.dimension == pytest.approx(2.0, abs=0.15)
    with pytest.raises(ConfigError, match="points"):
        correlation_dimension(np.zeros(5))
    with pytest.raises(ConfigError, match="r_range"):
        correlation_dimension(points, r_range=(10.0, 20.0))


def _lorenz(_t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


@pytest.mark.slow
def test_lorenz_attractor_has_dimension_two_point_zero_five():
    times = np.arange(50.0, 550.0, 0.02)  # the first 50 time units are transient
    sol = solve_ivp(_lorenz, (0, 550), [1.0, 1.0, 1.0], t_eval=times, rtol=1e-8, atol=1e-8)
    result = correlation_dimension(sol.y.T, theiler=10, max_points=5000)
    assert result.dimension == pytest.approx(2.05, abs=0.1)


def test_result_to_dict_is_plain_json():
    import json

    from cellvae.metrics.dimension import CorrDimResult

    result = CorrDimResult(
        dimension=1.5,
        log_r=np.array([-2.0, -1.0]),
        log_c=np.array([-6.0, -4.5]),
        fit_range=(0.1, 0.4),
        n_points=300,
        n_pairs=44850,
        theiler=2,
    )
    d = json.loads(json.dumps(result.to_dict()))
    assert d == {
        "dimension": 1.5,
        "fit_range": [0.1, 0.4],
        "n_points": 300,
        "n_pairs": 44850,
        "theiler": 2,
        "log_r": [-2.0, -1.0],
        "log_c": [-6.0, -4.5],
    }
