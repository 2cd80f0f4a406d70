"""Lorenz: the data dimension matches the literature; GAN samples are lower-dimensional than
VAE samples with decoder noise."""

from __future__ import annotations

import numpy as np
import pytest

from cellvae.experiments import lorenz
from tests.experiments.conftest import assert_outputs


def test_trajectory_stays_on_the_attractor():
    points = lorenz.lorenz_trajectory(500, seed=1)
    assert points.shape == (500, 3)
    # the attractor lies in |x| < 25, |y| < 30, 0 < z < 55 and its z averages about 23.5
    assert np.abs(points[:, 0]).max() < 25 and np.abs(points[:, 1]).max() < 30
    assert 0 < points[:, 2].min() and points[:, 2].max() < 55
    assert 20 < points[:, 2].mean() < 27


@pytest.mark.slow
def test_fast_run_gan_dimension_below_vae(outdir):
    result = lorenz.run(outdir, fast=True)
    assert_outputs(result, "lorenz")
    numbers = result["numbers"]
    assert abs(numbers["dimension_data"] - 2.05) < 0.15
    assert numbers["dimension_gan"] < numbers["dimension_vae"]
    # decoder noise is what lifts the VAE: its noise-free means are lower-dimensional
    assert numbers["dimension_vae_mean"] < numbers["dimension_vae"]
