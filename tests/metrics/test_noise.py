"""The camera's noise line: given parameters, the variance-versus-mean fit, clipped data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cellvae.errors import CellvaeError, ConfigError
from cellvae.metrics.noise import (
    NoiseModel,
    camera_model,
    clip_levels,
    fit_noise_line,
    window_noise_floors,
)


def _camera_image(rng, mean: np.ndarray, gain: float, offset: float, read: float) -> np.ndarray:
    """Photon counts with mean ``mean`` through a camera: gain, offset, read noise, rounding."""
    counts = rng.poisson(mean)
    return np.round(gain * counts + offset + rng.normal(0, read, mean.shape)).astype(np.uint16)


def _smooth_scene(shape=(512, 512)) -> np.ndarray:
    """Expected photon counts 20..400 that vary only slowly (no power beyond 0.45 cycles/px)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[0]
    return 20 + 380 * (0.5 + 0.5 * np.sin(3 * yy) * np.cos(2 * xx)) ** 2


def test_noise_line_of_given_parameters_is_exact():
    cam = camera_model(gain=2.0, offset=100.0, read_noise=3.0, quantised=True)
    assert cam.noise == NoiseModel(2.0, 9.0 + 1 / 12 - 200.0)
    assert cam.sources == {"gain": "given", "offset": "given", "read_noise": "given"}
    assert cam.fit is None
    np.testing.assert_allclose(
        cam.noise.variance(np.array([100.0, 150.0])), [9 + 1 / 12, 109 + 1 / 12]
    )
    assert cam.noise.variance(np.array([0.0]))[0] == 0.0  # never negative
    meta = camera_model(gain=1.0, offset=0.0, read_noise=0.0, sources={"gain": "metadata"})
    assert meta.sources["gain"] == "metadata" and meta.sources["offset"] == "given"
    with pytest.raises(ConfigError, match=r"^gain: -1.0 is out of range"):
        camera_model(gain=-1.0, offset=0.0, read_noise=1.0)
    with pytest.raises(CellvaeError, match="no image to estimate"):
        camera_model(gain=1.0)


@pytest.mark.parametrize(("gain", "offset", "read"), [(2.0, 100.0, 3.0), (0.5, 200.0, 6.0)])
def test_fit_recovers_the_noise_line_of_a_known_camera(rng, gain, offset, read):
    image = _camera_image(rng, _smooth_scene(), gain, offset, read)
    cam = camera_model(image)
    assert cam.sources == {"gain": "estimated", "offset": "unknown", "read_noise": "unknown"}
    assert cam.gain == pytest.approx(gain, rel=0.05)
    values = np.array([offset + gain * 20, offset + gain * 400])
    truth = gain * (values - offset) + read**2 + 1 / 12
    np.testing.assert_allclose(cam.noise.variance(values), truth, rtol=0.08)
    assert cam.fit["windows_used"] == 256 and cam.fit["windows_clipped"] == 0
    assert 0.7 < cam.fit["scatter_over_expected"] < 1.3  # the floor is white noise
    assert cam.fit["outer_spectrum_ratio"] == pytest.approx(1.0, abs=0.1)
    # offset known: gain and read noise estimated; read noise known: the offset
    with_offset = camera_model(image, offset=offset)
    # read noise**2 is the intercept plus gain * offset: a small difference of large numbers
    assert with_offset.read_noise == pytest.approx(read, abs=1.5)
    assert with_offset.sources["read_noise"] == "estimated"
    both = camera_model(image, offset=offset, read_noise=read)
    assert both.gain == pytest.approx(gain, rel=0.03)
    assert both.noise.intercept == pytest.approx(read**2 + 1 / 12 - both.gain * offset)
    with_read = camera_model(image, read_noise=read)
    assert with_read.offset == pytest.approx(offset, abs=3 * read)


def test_fit_with_a_known_gain_fits_only_the_intercept(rng):
    image = _camera_image(rng, _smooth_scene(), 2.0, 100.0, 3.0)
    model, _ = fit_noise_line(image, 2, slope=2.0)
    assert model.slope == 2.0
    assert model.intercept == pytest.approx(9 + 1 / 12 - 200, abs=10)


def test_fit_on_synthetic_mitochondria_matches_the_generator():
    from cellvae.data.synthetic import mitochondria

    synth = mitochondria((512, 512), seed=3, photons=30)
    cam = camera_model(synth.image)
    gain = synth.metadata["gain"]
    values = np.percentile(synth.image, [5, 50, 99])
    truth = gain * values + 4 + 1 / 12
    np.testing.assert_allclose(cam.noise.variance(values), truth, rtol=0.1)


def test_window_noise_floor_of_white_noise_is_its_variance(rng):
    image = rng.normal(50, 3.0, (2, 256, 256))  # two planes, 2D windows
    mean, floor, clipped, relative_sd, inner, corner = window_noise_floors(image, 2, 32)
    assert mean.shape == floor.shape == (2 * 64,) and not clipped.any()
    np.testing.assert_allclose(mean, 50, atol=1.0)
    assert np.mean(floor) == pytest.approx(9.0, rel=0.04)
    assert np.std(floor / 9.0) == pytest.approx(relative_sd, rel=0.35)
    assert np.sum(inner) / np.sum(corner) == pytest.approx(1.0, abs=0.05)


def test_window_noise_floors_thin_a_large_image_evenly(rng):
    image = rng.normal(0, 1, (640, 640))
    mean, *_ = window_noise_floors(image, ndim=2, window=16, max_windows=100)
    assert 64 <= len(mean) <= 100


def test_clip_levels_are_pile_ups_at_the_extremes(rng):
    image = rng.normal(100, 10, (200, 200))
    assert clip_levels(image) == []
    clipped = np.clip(image, 95, 130)
    assert clip_levels(clipped) == [95.0, 130.0]
    assert clip_levels(np.full((4, 4), np.nan)) == []
    # integers repeat: only a camera's or a conversion's limits count as clipping
    levels = rng.integers(10, 30, (200, 200))
    assert clip_levels(levels.astype(np.uint8)) == clip_levels(levels.astype(np.float32)) == []
    assert clip_levels(np.clip(levels - 12, 0, 255).astype(np.uint8)) == [0.0]
    assert clip_levels(np.clip(levels * 200, 0, 4095).astype(np.uint16)) == [4095.0]
    assert clip_levels(np.clip(levels * 200, 0, 4000).astype(np.uint16)) == []


def test_a_mostly_clipped_image_cannot_be_fitted_and_says_what_to_give(rng):
    mean = ndimage.gaussian_filter(rng.random((256, 256)), 2) * 10
    image = np.clip(_camera_image(rng, mean, 1.0, 0.0, 4.0).astype(int) - 6, 0, None)
    with pytest.raises(CellvaeError, match="give the camera's gain, offset and read noise"):
        camera_model(image)


def test_signal_beyond_the_cutoff_shows_in_the_fit_diagnostics(rng):
    """An undersampled (or noise-free) image has no noise floor: the fit says so."""
    texture = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 0.6) * 500 + 1000
    _, fit = fit_noise_line(texture, 2)
    assert fit["outer_spectrum_ratio"] > 3
