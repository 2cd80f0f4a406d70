"""Fourier ring (2D) and shell (3D) correlation between two images.

``FRC(r) = Re sum F1 conj(F2) / sqrt(sum |F1|^2 sum |F2|^2)`` over the Fourier coefficients of
ring ``r``. It is 1 where the two images agree at that frequency and near 0 where they share
nothing (independent noise: about ``1 / sqrt(n)`` for ``n`` coefficients in the ring). The
frequency where it first falls below a threshold is the finest detail both images share:
the fixed 1/7 threshold, or the half-bit threshold of van Heel & Schatz (2005),
``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellvae.metrics.spectra import Window, apodization, ring_index


@dataclass
class FRCResult:
    """A Fourier ring/shell correlation curve with its thresholds.

    Attributes
    ----------
    frequencies : ``(R,)`` ring frequencies, cycles/px, 0 to Nyquist (0.5).
    correlation : ``(R,)`` the FRC, in [-1, 1] (NaN for a ring where an image has no power).
    n_points : ``(R,)`` Fourier coefficients per ring.
    threshold_1_7, threshold_half_bit : ``(R,)`` threshold curves.
    crossing_1_7, crossing_half_bit : first frequency (cycles/px, linearly interpolated)
        where the curve falls below the threshold; ``None`` if it never does up to Nyquist.
    """

    frequencies: np.ndarray
    correlation: np.ndarray
    n_points: np.ndarray
    threshold_1_7: np.ndarray
    threshold_half_bit: np.ndarray
    crossing_1_7: float | None
    crossing_half_bit: float | None

    def resolution(self, criterion: str = "1/7", pixel_size: float = 1.0) -> float | None:
        """Resolution ``pixel_size / crossing`` (same unit as ``pixel_size``), or ``None``."""
        crossing = self.crossing_1_7 if criterion == "1/7" else self.crossing_half_bit
        return None if not crossing else pixel_size / crossing

    def to_dict(self) -> dict:
        """Plain lists and floats, for JSON."""
        return {
            "frequencies": self.frequencies.tolist(),
            "correlation": [None if np.isnan(c) else float(c) for c in self.correlation],
            "n_points": self.n_points.tolist(),
            "threshold_half_bit": self.threshold_half_bit.tolist(),
            "crossing_1_7": self.crossing_1_7,
            "crossing_half_bit": self.crossing_half_bit,
        }


def half_bit_threshold(n_points: np.ndarray) -> np.ndarray:
    """The half-bit information threshold for rings of ``n_points`` coefficients."""
    root = np.sqrt(np.maximum(n_points, 1))
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def first_crossing(
    frequencies: np.ndarray, curve: np.ndarray, threshold: np.ndarray
) -> float | None:
    """First frequency past the mean (ring 0) where ``curve`` drops below ``threshold``.

    Interpolated linearly between the last ring above and the first below; ``None`` if the
    curve stays above the threshold.
    """
    below = np.flatnonzero(curve[1:] < threshold[1:]) + 1
    if len(below) == 0:
        return None
    i = int(below[0])
    if i == 1:
        return float(frequencies[1])
    above, under = curve[i - 1] - threshold[i - 1], curve[i] - threshold[i]
    t = above / (above - under)
    return float(frequencies[i - 1] + t * (frequencies[i] - frequencies[i - 1]))


def frc(a: np.ndarray, b: np.ndarray, window: Window = "tukey") -> FRCResult:
    """Fourier ring (2D) or shell (3D) correlation of two images of the same shape.

    Each image has its mean removed and is multiplied by the apodisation ``window``
    (``"tukey"``, ``"hann"`` or ``None``) before the transform. Rings are one Fourier pixel of
    the shortest axis wide, up to Nyquist.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"frc needs a 2D or 3D image, got shape {a.shape}")
    taper = apodization(a.shape, window)
    fa = np.fft.fftn((a - a.mean()) * taper)
    fb = np.fft.fftn((b - b.mean()) * taper)
    index, freqs = ring_index(a.shape)
    inside = index >= 0
    idx, R = index[inside], len(freqs)

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values[inside], minlength=R)

    cross = ring_sum(np.real(fa * np.conj(fb)))
    power = ring_sum(np.abs(fa) ** 2) * ring_sum(np.abs(fb) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(power > 0, cross / np.sqrt(power), np.nan)
    n_points = np.bincount(idx, minlength=R)
    one_seventh = np.full(R, 1.0 / 7.0)
    half_bit = half_bit_threshold(n_points)
    return FRCResult(
        frequencies=freqs,
        correlation=correlation,
        n_points=n_points,
        threshold_1_7=one_seventh,
        threshold_half_bit=half_bit,
        crossing_1_7=first_crossing(freqs, correlation, one_seventh),
        crossing_half_bit=first_crossing(freqs, correlation, half_bit),
    )
