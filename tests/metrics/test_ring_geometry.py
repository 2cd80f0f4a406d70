"""Which ring (2D) or shell (3D) a Fourier coefficient falls in, against known answers.

A periodic cosine puts all its power on the coefficients ``±k`` (integer cycles per image
along each axis). Ring ``i`` holds the frequencies closest to ``i / min(shape)`` cycles/px,
so the cosine's power must land in ring ``round(|k / shape| * min(shape))``. Integer vectors
never sit exactly half-way between two rings on a square grid (``4 (a² + b²)`` is even, an
odd square is not), so the answer is unambiguous there.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvae.metrics.frc import frc
from cellvae.metrics.spectra import (
    batched_high_frequency_power,
    radial_power_spectrum,
    ring_index,
)


def cosine(shape: tuple[int, ...], k: tuple[int, ...]) -> np.ndarray:
    """``cos(2 pi sum k_a x_a / n_a)``: integer ``k_a`` cycles along each axis."""
    grids = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    return np.cos(2 * np.pi * sum(ka * g for ka, g in zip(k, grids)))


def expected_ring(shape: tuple[int, ...], k: tuple[int, ...]) -> int:
    radius = np.sqrt(sum((ka / n) ** 2 for ka, n in zip(k, shape)))  # cycles/px
    return int(np.rint(radius * min(shape)))


def test_ring_index_of_known_coefficients_in_2d():
    index, freqs = ring_index((16, 16))
    np.testing.assert_allclose(freqs, np.arange(9) / 16)  # 0 .. Nyquist in steps of 1/16
    assert index[0, 0] == 0
    assert index[0, 3] == 3 and index[3, 0] == 3 and index[-3, 0] == 3  # on the axes
    assert index[1, 1] == 1  # radius 1.41 -> ring 1
    assert index[2, 2] == 3  # radius 2.83 -> ring 3 (nearest), not 2
    assert index[3, 3] == 4  # 4.24 -> 4
    assert index[4, 5] == 6  # 6.40 -> 6
    assert index[2, 5] == 5  # 5.39 -> 5
    assert index[8, 0] == 8  # Nyquist
    assert index[8, 8] == -1  # corner past Nyquist
    assert index[6, 6] == 8  # 8.49 -> 8, still inside Nyquist
    assert index[7, 6] == -1  # 9.22 -> 9, past it


def test_corner_coefficients_past_the_last_ring_are_left_out():
    index, freqs = ring_index((16, 16))
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(16), np.fft.fftfreq(16), indexing="ij")) * 16
    assert len(freqs) == 9
    assert np.all(index[np.rint(radius) >= 9] == -1)
    assert np.all(index[np.rint(radius) <= 8] == np.rint(radius[np.rint(radius) <= 8]))


def test_non_square_rings_are_one_fourier_pixel_of_the_short_axis_wide():
    index, freqs = ring_index((32, 48))
    np.testing.assert_allclose(freqs, np.arange(17) / 32)
    assert index[0, 6] == 4  # 6 / 48 cycles/px = 4 / 32
    assert index[0, 7] == 5  # 7/48 = 4.67/32 -> 5
    assert index[0, 24] == 16  # Nyquist of the long axis
    assert index[5, 0] == 5


@settings(max_examples=40, deadline=None)
@given(ky=st.integers(0, 16), kx=st.integers(0, 16))
def test_power_spectrum_peak_lies_in_the_nearest_ring_2d(ky, kx):
    shape = (32, 32)
    ring = expected_ring(shape, (ky, kx))
    if (ky, kx) == (0, 0) or ring > 16:
        return
    freqs, power = radial_power_spectrum(cosine(shape, (ky, kx)), window=None)
    assert int(np.argmax(power)) == ring
    assert freqs[ring] == pytest.approx(ring / 32)
    assert np.sum(power > 1e-9 * power.max()) == 1  # all power in that one ring


@pytest.mark.parametrize(
    ("shape", "k"),
    [
        ((16, 16, 16), (1, 1, 1)),
        ((16, 16, 16), (2, 2, 1)),
        ((16, 16, 16), (3, 2, 2)),
        ((8, 16, 16), (1, 2, 3)),
        ((12, 16, 20), (2, 3, 5)),
    ],
)
def test_power_spectrum_peak_lies_in_the_nearest_shell_3d(shape, k):
    ring = expected_ring(shape, k)
    _, power = radial_power_spectrum(cosine(shape, k), window=None)
    assert int(np.argmax(power)) == ring
    assert np.sum(power > 1e-9 * power.max()) == 1


@pytest.mark.parametrize(
    ("shape", "k1", "k2"),
    [
        ((32, 32), (2, 2), (5, 1)),
        ((32, 32), (1, 1), (0, 7)),
        ((24, 40), (3, 4), (1, 15)),
        ((16, 16, 16), (2, 2, 1), (1, 1, 5)),
    ],
)
def test_frc_sign_per_ring_of_two_cosines(shape, k1, k2):
    # a = c1 + c2 and b = c1 - c2 agree in c1's ring (FRC = +1) and are opposite in c2's (-1)
    c1, c2 = cosine(shape, k1), cosine(shape, k2)
    r1, r2 = expected_ring(shape, k1), expected_ring(shape, k2)
    assert r1 != r2
    result = frc(c1 + c2, c1 - c2, window=None)
    assert result.correlation[r1] == pytest.approx(1.0)
    assert result.correlation[r2] == pytest.approx(-1.0)
    assert result.frequencies[r1] == pytest.approx(r1 / min(shape))


def test_frc_ring_counts_add_up_to_the_coefficients_inside_nyquist():
    result = frc(np.random.default_rng(0).normal(size=(20, 20)), np.ones((20, 20)), window=None)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(20), np.fft.fftfreq(20), indexing="ij"))
    assert result.n_points.sum() == np.sum(np.rint(radius * 20) <= 10)
    assert list(result.n_points[:3]) == [1, 8, 12]  # mean; 4 at 1 + 4 at 1.41; 4 at 2 + 8 at 2.24


@pytest.mark.parametrize("cutoff", [0.25, 0.5])
def test_high_frequency_power_counts_exactly_the_coefficients_above_the_cutoff(cutoff):
    # a cosine just above the cutoff counts in full, one just below not at all
    n = 64
    edge = cutoff * 0.5 * n  # cutoff in cycles per image
    above, below = int(np.floor(edge)) + 1, int(np.ceil(edge)) - 1
    for k, counted in ((above, True), (below, False)):
        img = cosine((n, n), (0, k))
        power = batched_high_frequency_power(img[None], 2, cutoff, None)[0]
        total = np.sum(np.abs(np.fft.fftn(img)) ** 2)
        assert power == pytest.approx(total if counted else 0.0, abs=1e-6 * total)
