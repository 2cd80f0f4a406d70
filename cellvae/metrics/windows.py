"""Power per frequency ring in overlapping windows, with each window's noise floor.

The windows are those of :mod:`cellvae.metrics.blurmap` (window ``g`` covers pixels
``[g * stride - before, g * stride - before + window)`` along each analysed axis, mirrored at
the borders; ``before = (window - stride) // 2``), so every map built on them overlays the
image the same way. Each window has its mean removed and is tapered by a periodic Hann window;
ring ``r`` holds the coefficients whose frequency rounds to ``r / window`` cycles/px, up to
Nyquist (corners beyond it are left out). For pixel noise with variances ``v_i``, every
coefficient of a window's transform has expected power ``sum(taper**2 * v)``: the window's
noise floor, computed from the :class:`~cellvae.metrics.noise.NoiseModel` and the original's
pixels (an unbiased estimate, since the variance is a line in the intensity).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cellvae.metrics.blurmap import _mirror, _read, window_grid
from cellvae.metrics.noise import NoiseModel
from cellvae.metrics.spectra import apodization, radial_frequency, rfft_weights


def window_origin(window: int, stride: int) -> float:
    """Image pixel index (pixel centres at integers) of the centre of window 0 of a map
    whose windows of ``window`` px start ``(window - stride) // 2`` px before their cell."""
    return (window - 1) / 2 - (window - stride) // 2


@dataclass
class WindowSpectra:
    """Ring powers of the windows of an original, its reconstruction and (optionally) a truth.

    Attributes
    ----------
    original, recon : ``(*lead, *grid, R)`` power per ring of each window.
    truth : the same for the noise-free truth, or None.
    noise : ``(*lead, *grid)`` expected noise power per Fourier coefficient of each window of
        the original.
    counts : ``(R,)`` Fourier coefficients per ring (full spectrum).
    frequencies : ``(R,)`` ring frequencies, cycles/px, 0 to Nyquist.
    spread : ``n * sum(taper**4) / sum(taper**2)**2``: how much the taper correlates
        neighbouring coefficients (1 without a taper); sets the noise floor's uncertainty.
    window, stride : window edge and step, px; ``shape``: the images' shape; ``ndim``:
        analysed (trailing) axes.
    """

    original: np.ndarray
    recon: np.ndarray
    truth: np.ndarray | None
    noise: np.ndarray
    counts: np.ndarray
    frequencies: np.ndarray
    spread: float
    window: int
    stride: int
    shape: tuple[int, ...]
    ndim: int

    @property
    def origin_px(self) -> float:
        """Image pixel index (pixel centres at integers) of the centre of window 0."""
        return window_origin(self.window, self.stride)

    @property
    def grid(self) -> tuple[int, ...]:
        """Shape of the window grid (leading axes included)."""
        return self.noise.shape


def _ring_matrix(window: int, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K, R)`` matrix summing ``rfftn`` coefficients into rings (mirror weights included)
    and the ``(R,)`` coefficient counts per ring."""
    shape = (window,) * ndim
    freq = radial_frequency(shape, real=True)
    ring = np.rint(freq * window).astype(np.int64).ravel()
    weight = np.broadcast_to(rfft_weights(shape), freq.shape).ravel()
    n_rings = window // 2 + 1
    inside = np.flatnonzero(ring < n_rings)
    matrix = np.zeros((ring.size, n_rings))
    matrix[inside, ring[inside]] = weight[inside]
    return matrix, matrix.sum(axis=0)


def window_spectra(
    original,
    recon,
    noise: NoiseModel,
    truth=None,
    window: int = 32,
    stride: int | None = None,
    ndim: int | None = None,
) -> WindowSpectra:
    """Ring powers of overlapping windows of ``original``, ``recon`` and ``truth``.

    Parameters
    ----------
    original, recon, truth : arrays of one shape (numpy, ``zarr.Array`` or dask): leading axes,
        then the ``ndim`` analysed axes, e.g. ``(Y, X)``, ``(Z, Y, X)``, ``(C, Z, Y, X)``.
        They are read block by block, so memory is bounded by the block, not the image.
    noise : the original's noise line (:class:`~cellvae.metrics.noise.NoiseModel`).
    window : window edge, px, along each analysed axis; ``stride``: step, default half of it.
    ndim : 2 or 3 analysed axes; default ``min(original.ndim, 3)``.
    """
    shape = tuple(int(s) for s in original.shape)
    for other, name in ((recon, "reconstruction"), (truth, "truth")):
        if other is not None and tuple(other.shape) != shape:
            raise ValueError(f"shapes differ: {shape} and {tuple(other.shape)} ({name})")
    ndim, stride, lead_shape, sizes, grid, before, per_axis = window_grid(
        shape, window, stride, ndim
    )
    taper = apodization((window,) * ndim, "hann")
    t2 = taper**2
    rings, counts = _ring_matrix(window, ndim)
    images = [original, recon] + ([truth] if truth is not None else [])
    powers = np.zeros((len(images), *lead_shape, *grid, len(counts)))
    floor = np.zeros((*lead_shape, *grid))
    axes = tuple(range(ndim, 2 * ndim))
    for lead in np.ndindex(*lead_shape):
        for corner in itertools.product(*[range(0, g, per_axis) for g in grid]):
            block = tuple(slice(c, min(c + per_axis, g)) for c, g in zip(corner, grid))
            ranges = [
                _mirror(
                    np.arange(b.start * stride - before, (b.stop - 1) * stride - before + window), n
                )
                for b, n in zip(block, sizes)
            ]
            for i, image in enumerate(images):
                region = _read(image, lead, ranges)
                wins = sliding_window_view(region, (window,) * ndim)
                wins = wins[(slice(None, None, stride),) * ndim]
                if i == 0:
                    floor[(*lead, *block)] = noise.slope * np.tensordot(
                        wins, t2, axes=ndim
                    ) + noise.intercept * float(t2.sum())
                centred = wins - wins.mean(axis=axes, keepdims=True)
                spectrum = np.abs(np.fft.rfftn(centred * taper, axes=axes)) ** 2
                flat = spectrum.reshape(*spectrum.shape[:ndim], -1)
                powers[(i, *lead, *block)] = flat @ rings
    spread = float(taper.size * np.sum(taper**4) / t2.sum() ** 2)
    return WindowSpectra(
        original=powers[0],
        recon=powers[1],
        truth=powers[2] if truth is not None else None,
        noise=np.maximum(floor, 0.0),
        counts=counts,
        frequencies=np.arange(len(counts)) / window,
        spread=spread,
        window=window,
        stride=stride,
        shape=shape,
        ndim=ndim,
    )
