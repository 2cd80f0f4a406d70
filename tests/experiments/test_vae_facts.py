"""Fast versions of the conv-VAE experiments assert the direction of each effect."""

from __future__ import annotations

import pytest

from cellvae.experiments import (
    amortization_gap,
    collapse,
    latent_size,
    pca,
    prototype,
    rate_distortion,
    variance_to_zero,
)
from tests.experiments.conftest import assert_outputs


@pytest.mark.slow
def test_rate_falls_and_distortion_rises_with_beta(outdir):
    result = rate_distortion.run(outdir, fast=True)
    assert_outputs(result, "rate-distortion")
    n = result["numbers"]
    assert n["rate_at_max_beta"] < n["rate_at_min_beta"]
    assert n["distortion_at_max_beta"] > n["distortion_at_min_beta"]


@pytest.mark.slow
def test_large_beta_collapses_latents_and_reconstructions(outdir):
    result = collapse.run(outdir, fast=True)
    assert_outputs(result, "collapse")
    n = result["numbers"]
    assert n["active_units_max_beta"] < n["active_units_min_beta"]
    assert n["recon_var_max_beta"] < n["recon_var_min_beta"]


@pytest.mark.slow
def test_kl_grows_as_sigma_goes_to_zero(outdir):
    result = variance_to_zero.run(outdir, fast=True)
    assert_outputs(result, "variance-to-zero")
    n = result["numbers"]
    # σ from 0.3 to 0.01 adds at least D·log(30) − D·½·0.3² ≈ 53 nats for D = 16
    assert n["kl_smallest_sigma"] - n["kl_largest_sigma"] > 40


def test_prototype_is_more_central_than_prior_samples(outdir):
    result = prototype.run(outdir, fast=True)
    assert_outputs(result, "prototype")
    n = result["numbers"]
    assert 0 < n["prototype_to_data_mean"] < n["samples_to_data_mean"]
    assert n["prototype_to_nearest_train"] > 0


@pytest.mark.slow
def test_total_kl_grows_slower_than_linearly(outdir):
    result = latent_size.run(outdir, fast=True)
    assert_outputs(result, "latent-size")
    n = result["numbers"]
    assert n["kl_d2"] < n["kl_d32"] < n["linear_reference_d32"]


@pytest.mark.slow
def test_local_posteriors_beat_the_encoder(outdir):
    result = amortization_gap.run(outdir, fast=True)
    assert_outputs(result, "amortization-gap")
    n = result["numbers"]
    assert n["gap_mean"] >= 0
    assert n["iwae_local"] >= n["elbo_local"] and n["iwae_amortised"] >= n["elbo_amortised"]


@pytest.mark.slow
def test_pca_reconstructs_with_d_components(outdir):
    result = pca.run(outdir, fast=True)
    assert_outputs(result, "pca")
    n = result["numbers"]
    # both reconstruct far better than the full intensity range and sample finitely
    assert 0 < n["pca_recon_rms"] < 0.5 and 0 < n["vae_recon_rms"] < 0.5
    assert n["pca_sample_precision_rms"] > 0 and n["vae_sample_precision_rms"] > 0
