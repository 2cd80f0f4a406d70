"""Blur: the hierarchical discretized-logistic VAE keeps finer detail than the flat Gaussian."""

from __future__ import annotations

import numpy as np
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


def test_ground_truth_part_meets_the_known_answers(outdir):
    """The fast ground-truth part: perfect denoiser, blurs and a graded blur at 30 and 200
    photons, scored from the noisy original and from the truth."""
    outdir.mkdir(parents=True)
    numbers, holds = blur.ground_truth(outdir, fast=True, seed=0)
    assert holds
    assert numbers["truth_perfect_denoiser_30_share"] >= 0.9
    assert numbers["truth_blur_sigma2_200_share"] <= 0.3
    assert numbers["truth_graded_blur_sigma0..2_200_spearman"] >= 0.8
    assert (outdir / "blur_truth.csv").stat().st_size > 0
    assert (outdir / "blur_truth.png").read_bytes()[:4] == b"\x89PNG"


def test_graded_blur_rises_across_the_image(rng):
    from scipy import ndimage

    from cellvae.experiments.blur_truth import graded_blur

    image = rng.normal(size=(32, 50))
    graded = graded_blur(image)
    np.testing.assert_array_equal(graded[:, 0], image[:, 0])
    np.testing.assert_array_equal(graded[:, -1], ndimage.gaussian_filter(image, 2.0)[:, -1])


@pytest.mark.slow
def test_a_trained_model_reconstructs_the_whole_image(rng):
    from cellvae.experiments.blur_truth import trained_reconstruction

    image = (rng.random((64, 64)) * 200).astype(np.uint8)
    recon, seconds = trained_reconstruction(image, steps=3)
    assert recon.shape == image.shape and np.isfinite(recon).all() and seconds > 0
    assert 0 <= recon.min() and recon.max() <= 255 * 1.01
