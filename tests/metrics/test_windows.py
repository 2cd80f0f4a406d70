"""Window ring spectra: the noise floor of known noise, the blur map's window layout, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import cellvae.metrics.blurmap as blurmap_module
from cellvae.metrics.blurmap import blur_map
from cellvae.metrics.noise import NoiseModel
from cellvae.metrics.structure import structure_map
from cellvae.metrics.windows import window_spectra


def test_noise_floor_is_the_expected_power_of_known_white_noise(rng):
    """Poisson-like noise whose variance is a line in the mean: every ring's power is the
    floor times its coefficient count, and the floor is sum(taper**2 * variance)."""
    mean = np.where(np.arange(256) < 128, 100.0, 400.0)[None, :].repeat(256, 0)
    noise = NoiseModel(0.5, 4.0)  # variance 54 left, 204 right
    image = mean + rng.normal(size=mean.shape) * np.sqrt(noise.variance(mean))
    spectra = window_spectra(image, image, noise, window=32, stride=32)
    assert spectra.grid == (8, 8) and spectra.counts.shape == (17,)
    taper_energy = (3 / 8) ** 2 * 32**2  # sum of a 2D periodic Hann squared
    np.testing.assert_allclose(spectra.noise[:, :3], 54 * taper_energy, rtol=0.03)
    np.testing.assert_allclose(spectra.noise[:, 5:], 204 * taper_energy, rtol=0.03)
    fine = spectra.frequencies >= 0.125
    measured = spectra.original[..., fine].sum(-1)
    expected = spectra.noise * spectra.counts[fine].sum()
    assert np.mean(measured / expected) == pytest.approx(1.0, abs=0.02)
    spread = np.std(measured / expected)  # the deviation the detection threshold assumes
    assert spread == pytest.approx(
        np.sqrt(2 * spectra.spread / spectra.counts[fine].sum()), rel=0.3
    )
    assert spectra.spread == pytest.approx((35 / 18) ** 2)  # 1D periodic Hann: 35/18
    assert spectra.frequencies[-1] == 0.5 and spectra.counts.sum() < 32 * 32


def test_windows_sit_where_the_blur_map_windows_sit(rng):
    """One bright pixel has power in exactly the windows of blur_map that hold it."""
    image = np.zeros((40, 48))
    image[17, 30] = 1.0
    spectra = window_spectra(image, image, NoiseModel(0.0, 0.0), window=8, stride=4)
    reference = blur_map(image, image, window=8, stride=4, window_fn="hann")
    np.testing.assert_array_equal(
        spectra.original.sum(-1) > 1e-12, reference.original_power > 1e-12
    )
    assert spectra.origin_px == reference.origin_px


def test_blockwise_reading_gives_the_same_spectra(rng, monkeypatch):
    image = rng.normal(size=(2, 40, 36)) + 10
    recon = image * 0.5
    whole = window_spectra(image, recon, NoiseModel(1.0, 0.0), truth=image, window=8, ndim=2)
    # the block budget is blurmap's, shared by both windowed maps (blurmap.window_grid)
    monkeypatch.setattr(blurmap_module, "_BLOCK_VALUES", 3 * 8**2)
    store = zarr.create_array(zarr.storage.MemoryStore(), data=image, chunks=(1, 10, 10))
    parts = window_spectra(store, recon, NoiseModel(1.0, 0.0), truth=image, window=8, ndim=2)
    for name in ("original", "recon", "truth", "noise"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-10)
    np.testing.assert_allclose(whole.recon, whole.original / 4, rtol=1e-10)


def test_shapes_and_dimensions_are_checked(rng):
    from cellvae.errors import ConfigError

    image = rng.normal(size=(32, 32))
    with pytest.raises(ValueError, match=r"shapes differ.*\(truth\)"):
        window_spectra(image, image, NoiseModel(1, 0), truth=image[:16])
    with pytest.raises(ConfigError, match=r"^window"):
        window_spectra(image, image, NoiseModel(1, 0), window=64)


def test_noise_free_images_score_the_plain_power_ratio(rng):
    """Without noise the share kept is the reconstruction's band power over the original's
    (capped at 1), and the original resolves up to Nyquist (2 px)."""
    from scipy import ndimage

    image = ndimage.gaussian_filter(rng.normal(size=(128, 128)), 0.7) * 100 + 500
    recon = ndimage.gaussian_filter(image, 1.0)
    bmap = structure_map(image, recon, NoiseModel(0.0, 0.0), window=16, stride=8)
    assert bmap.resolution.original_resolves_px == 2.0
    assert bmap.band == (0.125, 0.5)
    spectra = window_spectra(image, recon, NoiseModel(0.0, 0.0), window=16, stride=8)
    rings = spectra.frequencies >= 0.125
    expected = spectra.recon[..., rings].sum(-1) / spectra.original[..., rings].sum(-1)
    np.testing.assert_allclose(bmap.share, np.minimum(expected, 1.0), rtol=1e-10)
    same = structure_map(image, image, NoiseModel(0.0, 0.0), window=16, stride=8)
    np.testing.assert_allclose(same.share, 1.0)


def test_pure_noise_has_no_signal_anywhere(rng):
    image = 100 + rng.normal(0, 5, (128, 128))
    bmap = structure_map(image, np.full_like(image, 100.0), NoiseModel(0.0, 25.0), window=16)
    assert np.mean(np.isnan(bmap.share)) >= 0.98
    assert bmap.worst_regions() == []
