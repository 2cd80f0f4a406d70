"""Noise-aware blur: the share of the original's resolvable fine structure a reconstruction kept.

A reconstruction is also a denoiser, so comparing its fine detail with the noisy original's
calls removed noise "lost detail". Here the original's *signal* power is estimated free of
noise, window by window, by subtracting the window's noise floor (expected noise power per
Fourier coefficient, from the camera's noise line, see :mod:`cellvae.metrics.windows`) from
its power in each frequency ring:

- **resolvable band**: pooled over the windows that have signal, ``SNR(f) = signal / noise``
  per ring gives the FRC two independent acquisitions of the original would have,
  ``SNR / (1 + SNR)``. The original resolves detail down to ``1 / f`` where that falls below
  1/7; the band scored is from the fine-detail cut-off (default 0.125 cycles/px, detail finer
  than 8 px) to that frequency.
- **share kept**, per window: the reconstruction's power in the band over the original's
  signal power there, at most 1 (power beyond the signal, e.g. kept noise, counts as all kept).
  A window whose signal is below :data:`DETECT` standard deviations of its noise floor's
  sampling error has "no signal" (NaN), never "all detail lost".
- **what the reconstruction keeps**: pooled per ring, the reconstruction's power over the
  signal's; it keeps detail down to ``1 / f`` where that falls below 1/2 (and never finer than
  the original resolves).

With the noise-free ``truth`` the same figures are computed exactly (its power replaces the
estimated signal), which is how the estimate is validated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellvae.errors import check_range
from cellvae.metrics.blurmap import pick_windows
from cellvae.metrics.frc import first_crossing
from cellvae.metrics.noise import NoiseModel
from cellvae.metrics.windows import WindowSpectra, window_origin, window_spectra

#: a window has signal when its estimated signal power exceeds this many standard deviations
#: of the sampling error of its noise power (a one-sided test; about 1 % false calls)
DETECT = 3.0
#: worst regions are ranked among windows whose signal is at least this many deviations
RANK = 6.0
#: the expected FRC of two acquisitions below which the original no longer resolves a ring
RESOLVED_FRC = 1.0 / 7.0
#: share of the signal's power per ring below which the reconstruction no longer keeps it
KEPT_POWER = 0.5


@dataclass
class Resolution:
    """Per-ring figures pooled over the windows with signal, and the two resolutions.

    Attributes
    ----------
    frequencies : ``(R,)`` cycles/px.
    original_frc : ``(R,)`` expected FRC of two independent acquisitions of the original,
        ``SNR / (1 + SNR)`` (NaN where nothing was pooled).
    kept_power : ``(R,)`` reconstruction power over the original's estimated signal power.
    truth_kept_power : the same against the noise-free truth, or None.
    original_resolves_px : ``1 / f`` where ``original_frc`` falls below 1/7 (2 px = Nyquist
        when it never does); None without signal.
    reconstruction_keeps_px : ``1 / f`` where ``kept_power`` falls below 1/2, at least
        ``original_resolves_px``; ``truth_keeps_px`` the same from the truth.
    """

    frequencies: np.ndarray
    original_frc: np.ndarray
    kept_power: np.ndarray
    truth_kept_power: np.ndarray | None
    original_resolves_px: float | None
    reconstruction_keeps_px: float | None
    truth_keeps_px: float | None = None

    def to_dict(self) -> dict:
        """Plain lists and floats (NaN as None), for JSON."""

        def listed(values):
            return None if values is None else [None if np.isnan(v) else float(v) for v in values]

        return {
            "frequencies_cycles_per_px": self.frequencies.tolist(),
            "original_expected_frc": listed(self.original_frc),
            "reconstruction_power_over_original_signal": listed(self.kept_power),
            "reconstruction_power_over_truth": listed(self.truth_kept_power),
            "original_resolves_px": self.original_resolves_px,
            "reconstruction_keeps_px": self.reconstruction_keeps_px,
            "truth_reconstruction_keeps_px": self.truth_keeps_px,
            "criteria": "original: expected FRC of two acquisitions >= 1/7; reconstruction: "
            "at least half the original's signal power per ring",
        }


@dataclass
class StructureMap:
    """The noise-aware blur map and what it rests on.

    Attributes
    ----------
    share : ``(*lead, *grid)`` share of the original's resolvable structure kept, 0..1; NaN
        where the original has no signal above noise.
    truth_share : the same with the noise-free truth as the original (NaN where the truth's
        structure would not show above the original's noise), or None.
    signal_to_noise : ``(*lead, *grid)`` the original's estimated signal power in the band
        over the standard deviation of its noise power's sampling error.
    signal_power, recon_power : ``(*lead, *grid)`` powers in the band (signal: estimated).
    truth_power : the truth's power in the band, or None.
    band : ``(low, high)`` cycles/px scored; None when the original resolves nothing above
        the cut-off.
    resolution : :class:`Resolution`.
    window, stride, shape, ndim : as in :class:`~cellvae.metrics.windows.WindowSpectra`.
    """

    share: np.ndarray
    truth_share: np.ndarray | None
    signal_to_noise: np.ndarray
    signal_power: np.ndarray
    recon_power: np.ndarray
    truth_power: np.ndarray | None
    band: tuple[float, float] | None
    resolution: Resolution
    window: int
    stride: int
    shape: tuple[int, ...]
    ndim: int

    @property
    def origin_px(self) -> float:
        """Image pixel index (pixel centres at integers) of the centre of map pixel 0."""
        return window_origin(self.window, self.stride)

    def _pooled(self, power: np.ndarray | None, reference: np.ndarray | None, signal) -> float:
        if power is None or reference is None or not signal.any():
            return float("nan")
        return float(np.sum(power[signal]) / np.sum(reference[signal]))

    @property
    def global_ratio(self) -> float:
        """Reconstruction power over the original's signal power, pooled over the windows
        with signal (not capped: above 1 the reconstruction has more fine detail than the
        original's signal, e.g. kept noise); NaN without signal."""
        return self._pooled(self.recon_power, self.signal_power, np.isfinite(self.share))

    @property
    def global_share(self) -> float:
        """Share of the original's resolvable structure kept, over the whole image, 0..1."""
        return float(min(self.global_ratio, 1.0))

    @property
    def truth_global_share(self) -> float:
        """:attr:`global_share` computed against the truth (NaN without one)."""
        signal = np.isfinite(self.truth_share) if self.truth_share is not None else None
        if signal is None:
            return float("nan")
        return float(min(self._pooled(self.recon_power, self.truth_power, signal), 1.0))

    def upsample(self, values: np.ndarray | None = None) -> np.ndarray:
        """A map (default :attr:`share`) repeated ``stride`` times: the input's shape."""
        out = self.share if values is None else values
        lead = len(self.shape) - self.ndim
        for axis in range(lead, len(self.shape)):
            out = np.repeat(out, self.stride, axis=axis)
        return out[tuple(slice(0, n) for n in self.shape)]

    def worst_regions(self, k: int = 5) -> list[dict]:
        """The ``k`` non-overlapping windows that kept the smallest share of the original's
        structure, among windows whose signal is at least :data:`RANK` deviations above noise
        (where the share is measured well). Positions are pixels of the input."""
        eligible = np.flatnonzero(np.isfinite(self.share) & (self.signal_to_noise >= RANK))
        order = eligible[np.argsort(self.share.flat[eligible], kind="stable")]
        regions = []
        for flat, place in pick_windows(
            order, self.share.shape, self.shape, self.window, self.stride, self.ndim, k
        ):
            region = {
                **place,
                "share_kept": float(self.share.flat[flat]),
                "signal_to_noise": float(self.signal_to_noise.flat[flat]),
            }
            if self.truth_share is not None:
                truth = float(self.truth_share.flat[flat])
                region["share_kept_against_truth"] = None if np.isnan(truth) else truth
            regions.append(region)
        return regions


def _first_below(frequencies: np.ndarray, curve: np.ndarray, level: float) -> float | None:
    """First frequency past ring 0 where ``curve`` falls below ``level`` (a NaN ring counts
    as below), linearly interpolated; None when it never does."""
    below = np.nan_to_num(curve, nan=-np.inf)
    return first_crossing(frequencies, below, np.full(len(curve), level))


def _pooled_frc(excess: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``SNR / (1 + SNR)`` per ring from pooled signal and noise powers ``(W, R)``; 1 where
    there is signal and no noise at all, NaN where nothing was pooled."""
    signal, floor = excess.sum(0), noise.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = signal / floor
        frc = snr / (1.0 + np.maximum(snr, 0.0))
    frc = np.where(floor > 0, frc, np.where(signal > 0, 1.0, 0.0))
    return frc if len(excess) else np.full(excess.shape[-1], np.nan)


def _keeps_px(freqs, kept, top: float, resolves: float) -> float:
    """Finest detail (px) where ``kept`` stays at or above :data:`KEPT_POWER`, searched up to
    ``top`` cycles/px; never finer than ``resolves``."""
    up_to = freqs <= top + 1e-12
    crossing = _first_below(freqs[up_to], kept[up_to], KEPT_POWER)
    return resolves if crossing is None else max(1.0 / crossing, resolves)


def score_windows(
    spectra: WindowSpectra, cutoff: float = 0.25, detect: float = DETECT
) -> StructureMap:
    """Share kept per window, the resolvable band and the resolutions (see the module)."""
    check_range("cutoff", cutoff, low=0.0, high=1.0)
    freqs, counts = spectra.frequencies, spectra.counts
    noise = spectra.noise[..., None] * counts  # expected noise power per ring
    excess = spectra.original - noise  # estimated signal power per ring

    def deviation(rings: np.ndarray) -> np.ndarray:
        """Standard deviation of the noise power summed over ``rings``, per window."""
        return spectra.noise * np.sqrt(2.0 * spectra.spread * counts[rings].sum())

    def detected(power: np.ndarray, rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spread = deviation(rings)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(spread > 0, power / spread, np.where(power > 0, np.inf, 0.0))
        return z, rings.any() & (z >= detect) & (power > 0)

    fine = freqs >= 0.5 * cutoff
    _, found = detected(excess[..., fine].sum(-1), fine)
    frc = _pooled_frc(excess[found], noise[found])
    resolves = None
    if np.isfinite(frc).any():
        crossing = _first_below(freqs, frc, RESOLVED_FRC)
        resolves = 1.0 / (crossing if crossing else float(freqs[-1]))
    top = 1.0 / resolves if resolves else 0.0
    rings = fine & (freqs <= top + 1e-12)
    signal = excess[..., rings].sum(-1)
    recon = spectra.recon[..., rings].sum(-1)
    z, has_signal = detected(signal, rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(has_signal, np.minimum(recon / signal, 1.0), np.nan)
        kept = spectra.recon[has_signal].sum(0) / excess[has_signal].sum(0)
    keeps = _keeps_px(freqs, kept, top, resolves) if has_signal.any() else None
    truth_share = truth_power = truth_kept = truth_keeps = None
    if spectra.truth is not None:
        truth_power = spectra.truth[..., rings].sum(-1)
        _, truth_found = detected(truth_power, rings)
        with np.errstate(invalid="ignore", divide="ignore"):
            truth_share = np.where(truth_found, np.minimum(recon / truth_power, 1.0), np.nan)
            truth_kept = spectra.recon[truth_found].sum(0) / spectra.truth[truth_found].sum(0)
        if truth_found.any():
            truth_keeps = _keeps_px(freqs, truth_kept, top, resolves)
    band = (float(freqs[rings].min()), float(freqs[rings].max())) if rings.any() else None
    return StructureMap(
        share=share,
        truth_share=truth_share,
        signal_to_noise=z,
        signal_power=signal,
        recon_power=recon,
        truth_power=truth_power,
        band=band,
        resolution=Resolution(freqs, frc, kept, truth_kept, resolves, keeps, truth_keeps),
        window=spectra.window,
        stride=spectra.stride,
        shape=spectra.shape,
        ndim=spectra.ndim,
    )


def structure_map(
    original,
    recon,
    noise: NoiseModel,
    truth=None,
    window: int = 32,
    stride: int | None = None,
    cutoff: float = 0.25,
    ndim: int | None = None,
) -> StructureMap:
    """Share of ``original``'s resolvable fine structure that ``recon`` kept, per window.

    Parameters
    ----------
    original, recon : arrays of one shape (numpy, ``zarr.Array`` or dask), leading axes then
        the ``ndim`` analysed axes; read block by block.
    noise : the original's noise line, from its camera model
        (:func:`cellvae.metrics.noise.camera_model`).
    truth : the noise-free original (same shape), to compute the same figures exactly.
    window, stride : window edge and step, px (default stride: half the window).
    cutoff : fraction of Nyquist where fine detail starts (0.25: 0.125 cycles/px, 8 px).
    ndim : 2 or 3 analysed axes; default ``min(original.ndim, 3)``.
    """
    spectra = window_spectra(original, recon, noise, truth, window, stride, ndim)
    return score_windows(spectra, cutoff)
