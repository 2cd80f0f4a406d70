"""Blur: the hierarchical discretized-logistic VAE keeps finer detail than the flat Gaussian."""

from __future__ import annotations

import pytest

from cellvae.experiments import blur
from tests.experiments.conftest import assert_outputs


def test_sharpness_of_an_exact_copy_is_perfect():
    _, test = blur.thin_tubule_patches(4, 4)
    s = blur.sharpness(test, test)
    assert s["hf_power_ratio"] == pytest.approx(1.0)
    assert s["frc_1_7_crossing"] == 0.5  # never crosses: correlation 1 up to Nyquist


@pytest.mark.slow
def test_hierarchical_keeps_finer_detail(outdir):
    result = blur.run(outdir, fast=True)
    assert_outputs(result, "blur")
    n = result["numbers"]
    assert n["frc_1_7_crossing_hier"] > n["frc_1_7_crossing_flat"]
    assert n["bits_per_dim_hier"] < n["bits_per_dim_flat"]
