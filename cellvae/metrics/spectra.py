"""Radially averaged power spectra and the high-frequency power ratio.

Frequencies are in cycles per pixel: 0 is the mean, 0.5 is the Nyquist frequency. Rings (2D)
or shells (3D) are one Fourier pixel of the shortest axis wide. A ``cutoff`` is a fraction of
Nyquist: ``cutoff=0.25`` means everything above 0.125 cycles/px, i.e. detail finer than 8 px.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.signal import windows

from cellvae.errors import check_choice, check_range

Window = Literal["hann", "tukey"] | None
WINDOWS = ("hann", "tukey", None)
#: taper fraction of the Tukey window: only the outer 12.5 % of each side is tapered.
TUKEY_ALPHA = 0.25


def apodization(shape: tuple[int, ...], kind: Window) -> np.ndarray:
    """Separable window of ``shape`` that tapers the borders to 0 (``None``: all ones).

    Multiplying by it before a Fourier transform stops the image edges from leaking power
    into every frequency.
    """
    check_choice("window", kind, WINDOWS)
    result = np.ones(shape, dtype=np.float64)
    if kind is None:
        return result
    for axis, n in enumerate(shape):
        w = windows.hann(n, sym=False) if kind == "hann" else windows.tukey(n, TUKEY_ALPHA)
        result = result * w.reshape([n if a == axis else 1 for a in range(len(shape))])
    return result


def radial_frequency(shape: tuple[int, ...], real: bool = False) -> np.ndarray:
    """Frequency magnitude, cycles/px, of every coefficient of ``fftn`` (``rfftn`` if real)."""
    axes = [np.fft.fftfreq(n) for n in shape]
    if real:
        axes[-1] = np.fft.rfftfreq(shape[-1])
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    return np.sqrt(sum(g**2 for g in grids))


def rfft_weights(shape: tuple[int, ...]) -> np.ndarray:
    """How many coefficients of the full spectrum each ``rfftn`` coefficient stands for (1, 2).

    Along the last axis, every column but the mean (and the Nyquist column for an even
    length) has a mirror twin that ``rfftn`` leaves out.
    """
    n = shape[-1]
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def ring_index(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ring number of every ``fftn`` coefficient and the ring frequencies up to Nyquist.

    Ring ``i`` holds the frequencies closest to ``i / min(shape)`` cycles/px; rings past
    Nyquist (the corners) get index ``-1``.
    """
    step = 1.0 / min(shape)
    index = np.rint(radial_frequency(shape) / step).astype(np.int64)
    n_rings = int(np.floor(0.5 / step)) + 1
    index[index >= n_rings] = -1
    return index, np.arange(n_rings) * step


def _prepare(img: np.ndarray, window: Window) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    check_choice("image ndim", img.ndim, (1, 2, 3))
    return (img - img.mean()) * apodization(img.shape, window)


def radial_power_spectrum(
    img: np.ndarray, window: Window = "tukey"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean power ``|F|^2 / N`` per ring of a 2D or 3D image (mean removed, apodised).

    Returns
    -------
    frequencies : ``(R,)`` cycles/px from 0 to Nyquist.
    power : ``(R,)`` mean power per ring.
    """
    spectrum = np.abs(np.fft.fftn(_prepare(img, window))) ** 2 / img.size
    index, freqs = ring_index(img.shape)
    inside = index >= 0
    total = np.bincount(index[inside], weights=spectrum[inside], minlength=len(freqs))
    count = np.bincount(index[inside], minlength=len(freqs))
    return freqs, total / np.maximum(count, 1)


def high_frequency_power(
    img: np.ndarray, cutoff: float = 0.25, window: Window = "tukey"
) -> np.ndarray:
    """Power above ``cutoff`` (fraction of Nyquist) of one 2D or 3D image; a 0-d array."""
    return batched_high_frequency_power(np.asarray(img)[None], img.ndim, cutoff, window)[0]


def batched_high_frequency_power(
    batch: np.ndarray, ndim: int, cutoff: float = 0.25, window: Window = "tukey"
) -> np.ndarray:
    """Power above ``cutoff`` (fraction of Nyquist) of each image of ``(..., *S)``.

    ``S`` are the last ``ndim`` axes. Each image has its mean removed and is apodised; the sum
    runs over the full spectrum (via ``rfftn`` with mirror weights), corners included.
    """
    check_range("cutoff", cutoff, low=0.0, high=1.0)
    batch = np.asarray(batch, dtype=np.float64)
    axes = tuple(range(batch.ndim - ndim, batch.ndim))
    shape = batch.shape[-ndim:]
    centred = batch - batch.mean(axis=axes, keepdims=True)
    spectrum = np.abs(np.fft.rfftn(centred * apodization(shape, window), axes=axes)) ** 2
    keep = (radial_frequency(shape, real=True) > 0.5 * cutoff) * rfft_weights(shape)
    return np.sum(spectrum * keep, axis=axes)


def hf_power_ratio(
    recon: np.ndarray, original: np.ndarray, cutoff: float = 0.25, window: Window = "tukey"
) -> float:
    """Power of ``recon`` above ``cutoff`` over that of ``original``; 1 = as sharp, < 1 = blurred.

    ``cutoff`` is a fraction of Nyquist (0.25: frequencies above 0.125 cycles/px). Both images
    get the same mean removal and apodisation. NaN when ``original`` has no such power.
    """
    recon, original = np.asarray(recon), np.asarray(original)
    if recon.shape != original.shape:
        raise ValueError(f"shapes differ: {recon.shape} and {original.shape}")
    num = high_frequency_power(recon, cutoff, window)
    den = high_frequency_power(original, cutoff, window)
    return float(num / den) if den > 0 else float("nan")
