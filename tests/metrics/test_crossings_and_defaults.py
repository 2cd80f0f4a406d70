"""FRC threshold crossings, resolution and the documented defaults, against hand-made answers.

Written to kill the mutants that survived ``make mutation`` on ``cellvae.metrics`` (see the
README's developer section).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellvae.errors import ConfigError
from cellvae.metrics.frc import FRCResult, first_crossing, frc, half_bit_threshold
from cellvae.metrics.spectra import (
    batched_high_frequency_power,
    hf_power_ratio,
    high_frequency_power,
)

FREQS = np.array([0.0, 0.1, 0.2, 0.3, 0.4])


def test_first_crossing_interpolates_between_the_last_ring_above_and_the_first_below():
    curve = np.array([1.0, 0.9, 0.3, 0.1, 0.0])
    # 0.9 -> 0.3 crosses 0.5 two thirds of the way from 0.1 to 0.2 cycles/px
    assert first_crossing(FREQS, curve, np.full(5, 0.5)) == pytest.approx(0.1 + 0.1 * 0.4 / 0.6)
    # a curve already below at ring 1 crosses at ring 1's frequency
    assert first_crossing(FREQS, np.array([1, 0.2, 0.1, 0, 0]), np.full(5, 0.5)) == 0.1
    # ring 0 (the mean) never counts, and a curve that stays above has no crossing
    assert first_crossing(FREQS, np.array([0.0, 1, 1, 1, 1]), np.full(5, 0.5)) is None
    # only the first crossing counts, even if the curve rises again
    curve = np.array([1.0, 1.0, 0.6, 0.4, 0.9])
    assert first_crossing(FREQS, curve, np.full(5, 0.5)) == pytest.approx(0.25)


def test_half_bit_threshold_known_values():
    # n = 1: (0.2071 + 1.9102) / (1.2071 + 0.9102); large n tends to 0.2071 / 1.2071
    np.testing.assert_allclose(
        half_bit_threshold(np.array([1, 100, 10**12])),
        [2.1173 / 2.1173, (0.2071 + 0.19102) / (1.2071 + 0.09102), 0.17157],
        rtol=1e-4,
    )
    assert half_bit_threshold(np.array([0]))[0] == half_bit_threshold(np.array([1]))[0]


def test_resolution_is_pixel_size_over_the_crossing():
    result = FRCResult(FREQS, FREQS, FREQS, FREQS, FREQS, 0.25, 0.125)
    assert result.resolution() == pytest.approx(4.0)
    assert result.resolution("1/7", pixel_size=0.5) == pytest.approx(2.0)
    assert result.resolution("half-bit", pixel_size=0.5) == pytest.approx(4.0)
    never = FRCResult(FREQS, FREQS, FREQS, FREQS, FREQS, None, None)
    assert never.resolution() is None and never.resolution("half-bit") is None


def test_frc_to_dict_is_plain_json_with_nan_as_null(rng):
    a = rng.normal(size=(16, 16))
    b = np.zeros((16, 16))  # no power: every ring's correlation is NaN
    result = frc(a, b)
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d) == {
        "frequencies",
        "correlation",
        "n_points",
        "threshold_half_bit",
        "crossing_1_7",
        "crossing_half_bit",
    }
    assert d["correlation"] == [None] * 9 and d["frequencies"][-1] == 0.5
    assert d["n_points"] == result.n_points.tolist()
    assert d["threshold_half_bit"] == pytest.approx(half_bit_threshold(result.n_points).tolist())
    same = frc(a, a).to_dict()
    assert same["correlation"][1:] == pytest.approx([1.0] * 8)
    assert same["crossing_1_7"] is None and same["crossing_half_bit"] is None


def test_frc_refuses_other_shapes_and_dimensions():
    with pytest.raises(ValueError, match="shapes differ"):
        frc(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="2D or 3D"):
        frc(np.zeros(8), np.zeros(8))


def _cosine(n: int, k: int) -> np.ndarray:
    return np.cos(2 * np.pi * k * np.arange(n) / n)[None, :] * np.ones((n, 1))


def test_high_frequency_power_defaults_are_a_quarter_of_nyquist_and_tukey(rng):
    img = rng.normal(size=(32, 32))
    np.testing.assert_allclose(
        high_frequency_power(img), batched_high_frequency_power(img[None], 2, 0.25, "tukey")[0]
    )
    assert high_frequency_power(img) != pytest.approx(high_frequency_power(img, window=None))
    # 5 cycles in 32 px = 0.156 cycles/px, above the default 0.125: counted
    assert high_frequency_power(_cosine(32, 5), window=None) > 100
    assert high_frequency_power(_cosine(32, 3), window=None) == pytest.approx(0.0, abs=1e-9)


def test_hf_power_ratio_without_original_power_is_nan_and_shapes_must_match(rng):
    flat = np.full((16, 16), 3.0)
    assert np.isnan(hf_power_ratio(rng.normal(size=(16, 16)), flat))
    assert np.isnan(hf_power_ratio(flat, flat))
    with pytest.raises(ValueError, match=r"shapes differ: \(16, 16\) and \(16, 17\)"):
        hf_power_ratio(flat, np.zeros((16, 17)))
    # the defaults (cutoff 0.25, tukey window) are used for both images
    a, b = rng.normal(size=(2, 32, 32))
    expected = high_frequency_power(b, 0.25, "tukey") / high_frequency_power(a, 0.25, "tukey")
    assert hf_power_ratio(b, a) == pytest.approx(float(expected))


def test_frc_thresholds_and_both_crossings_are_reported(rng):
    from scipy import ndimage

    signal = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 1.5) * 20
    a, b = (signal + rng.normal(0, 1.0, signal.shape) for _ in range(2))
    result = frc(a, b)
    np.testing.assert_array_equal(result.threshold_1_7, np.full(33, 1 / 7))
    np.testing.assert_allclose(result.threshold_half_bit, half_bit_threshold(result.n_points))
    c17 = first_crossing(result.frequencies, result.correlation, result.threshold_1_7)
    chb = first_crossing(result.frequencies, result.correlation, result.threshold_half_bit)
    assert result.crossing_1_7 == c17 and result.crossing_half_bit == chb
    assert 0.05 < chb < c17 < 0.5  # the half-bit curve lies above 1/7 for small rings


def test_power_spectrum_ignores_the_mean_and_honours_the_window(rng):
    from cellvae.metrics.spectra import radial_power_spectrum

    img = rng.normal(size=(32, 32))
    _, plain = radial_power_spectrum(img)
    _, offset = radial_power_spectrum(img + 1000.0)
    np.testing.assert_allclose(offset, plain, rtol=1e-9, atol=1e-9)
    _, hann = radial_power_spectrum(img, window="hann")
    _, none = radial_power_spectrum(img, window=None)
    assert not np.allclose(hann, plain) and not np.allclose(none, plain)
    # window=None: the plain periodogram, total power = variance (Parseval)
    spectrum = np.abs(np.fft.fftn(img - img.mean())) ** 2 / img.size
    assert none[1] == pytest.approx(
        spectrum[[1, -1, 0, 0, 1, 1, -1, -1], [0, 0, 1, -1, 1, -1, 1, -1]].mean()
    )
    with pytest.raises(ConfigError, match="image ndim"):
        radial_power_spectrum(np.zeros((2, 2, 2, 2)))


@pytest.mark.parametrize("shape", [(8, 6), (8, 7), (5, 7), (4, 6, 6), (4, 5, 7), (3, 6, 5)])
def test_rfft_sum_equals_the_full_spectrum_sum_for_even_and_odd_sizes(rng, shape):
    # cutoff 0: every coefficient but the mean; the rfft mirror weights must restore the rest
    img = rng.normal(size=shape)
    full = np.abs(np.fft.fftn(img - img.mean())) ** 2
    got = batched_high_frequency_power(img[None], len(shape), cutoff=0.0, window=None)[0]
    assert got == pytest.approx(full.sum() - full.flat[0])


def test_rfft_weights_known_values():
    from cellvae.metrics.spectra import rfft_weights

    np.testing.assert_array_equal(rfft_weights((3, 6)), [1, 2, 2, 1])  # mean, 2, 2, Nyquist
    np.testing.assert_array_equal(rfft_weights((6, 3, 7)), [1, 2, 2, 2])  # odd: no Nyquist


def test_batched_defaults_and_cutoff_range(rng):
    batch = rng.normal(size=(3, 16, 16))
    np.testing.assert_allclose(
        batched_high_frequency_power(batch, 2),
        batched_high_frequency_power(batch, 2, 0.25, "tukey"),
    )
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="cutoff"):
            batched_high_frequency_power(batch, 2, cutoff=bad)


def test_apodization_refuses_unknown_windows():
    from cellvae.metrics.spectra import apodization

    with pytest.raises(ConfigError, match="window: 'bogus'"):
        apodization((8, 8), "bogus")


def test_power_spectrum_ring_zero_is_the_windowed_mean(rng):
    from cellvae.metrics.spectra import apodization, radial_power_spectrum

    img = rng.normal(size=(16, 16)) + np.linspace(0, 5, 16)  # a ramp: windowed mean is not 0
    _, power = radial_power_spectrum(img, window="tukey")
    dc = np.sum((img - img.mean()) * apodization(img.shape, "tukey")) ** 2 / img.size
    assert power[0] == pytest.approx(dc) and dc > 1e-6


def test_first_crossing_uses_the_threshold_of_each_ring():
    # a rising threshold: 0.9 - 0.6 above at ring 1, 0.3 - 0.7 below at ring 2
    threshold = np.array([0.0, 0.6, 0.7, 0.8, 0.9])
    curve = np.array([1.0, 0.9, 0.3, 0.1, 0.0])
    assert first_crossing(FREQS, curve, threshold) == pytest.approx(0.1 + 0.1 * 0.3 / 0.7)


def test_tiny_intensities_keep_their_ratio_and_correlation(rng):
    # powers far below 1 are still powers: nothing may be treated as "no signal"
    a = rng.normal(size=(32, 32)) * 1e-4
    b = a * 0.5
    assert hf_power_ratio(b, a) == pytest.approx(0.25)
    np.testing.assert_allclose(frc(a, b).correlation[1:], 1.0)


def test_tukey_window_tapers_an_eighth_of_each_side():
    from cellvae.metrics.spectra import apodization

    w = apodization((64,), "tukey")
    assert 14 <= np.sum(w < 1) <= 18  # alpha 0.25: 12.5 % of 64 = 8 samples per side
    assert w[32] == 1.0 and w[0] == 0.0


@pytest.mark.parametrize("shape", [(5, 8), (4, 9), (3, 3, 10)])
def test_rfft_sum_for_sizes_with_and_without_a_factor_three(rng, shape):
    img = rng.normal(size=shape)
    full = np.abs(np.fft.fftn(img - img.mean())) ** 2
    got = batched_high_frequency_power(img[None], len(shape), cutoff=0.0, window=None)[0]
    assert got == pytest.approx(full.sum() - full.flat[0])


def test_one_dimensional_profiles_have_a_spectrum_and_messages_name_the_field(rng):
    from cellvae.metrics.spectra import radial_power_spectrum

    freqs, power = radial_power_spectrum(np.cos(2 * np.pi * 3 * np.arange(16) / 16), None)
    assert int(np.argmax(power)) == 3 and freqs[3] == pytest.approx(3 / 16)
    with pytest.raises(ConfigError, match=r"^image ndim: 4"):
        radial_power_spectrum(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ConfigError, match=r"^cutoff"):
        batched_high_frequency_power(np.zeros((1, 8, 8)), 2, cutoff=2.0)
