"""The camera's noise: pixel variance as a line in the intensity, given or fitted to one image.

A camera that counts photons with gain ``g`` (output units per photon), adds an ``offset``
and Gaussian read noise ``r`` (output units), and rounds to integers, gives pixels whose noise
variance is a line in their expected value ``v``::

    var = g * (v - offset) + r**2 + q        (q = 1/12 for integer data, else 0)
        = slope * v + intercept

:class:`NoiseModel` is that line; :class:`CameraModel` is the camera behind it, with where each
parameter came from (``"metadata"``, ``"given"`` or ``"estimated"``). Without the parameters,
:func:`fit_noise_line` fits the line to one image (a variance-versus-mean fit): in windows of
the image it measures the noise floor beyond the optical cut-off, where only noise lives (the
spectrum of white noise is flat at ``sum(taper**2 * var)`` per coefficient), against the
windows' mean intensity under the same taper. Windows with more than 1 % clipped pixels (a
pile-up at the image's minimum or maximum) are left out, since clipping lowers the variance.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from cellvae.errors import CellvaeError, check_range
from cellvae.metrics.spectra import apodization, radial_frequency, rfft_weights

#: spectrum beyond this radius (cycles/px) counts as noise floor for the fit: a microscope
#: sampled at Nyquist for its resolution has (next to) no signal out there.
OUTER_FREQUENCY = 0.45
#: a value at the image's minimum or maximum is a clip level when this share of pixels sits there
PILE_UP = 1e-3
#: windows with more than this share of clipped pixels are left out of the fit
CLIPPED_SHARE = 0.01
#: fewest unclipped windows a fit accepts
MIN_WINDOWS = 8
#: windows a small image is cut into at least (smaller windows), when it can be
SMALL_IMAGE_WINDOWS = 16
#: most windows the fit reads (an evenly spread subset of a larger image)
MAX_WINDOWS = 4096
#: an outer spectrum ratio above this means signal beyond the cut-off: the fit warns
OUTER_RATIO_WARNING = 1.5
#: values sampled to find clip levels
_LEVEL_SAMPLE = 2**22


@dataclass(frozen=True)
class NoiseModel:
    """Pixel noise variance ``slope * value + intercept`` (output units squared)."""

    slope: float
    intercept: float

    def variance(self, values: np.ndarray) -> np.ndarray:
        """Noise variance of pixels whose expected value is ``values`` (never negative)."""
        return np.maximum(self.slope * np.asarray(values, np.float64) + self.intercept, 0.0)


@dataclass
class CameraModel:
    """A camera's gain, offset and read noise, the noise line they give and their sources.

    Attributes
    ----------
    gain : output units per detected photon, or None where unknown.
    offset : output value at zero photons, or None where unknown.
    read_noise : read-noise standard deviation, output units, or None where unknown.
    quantisation : variance added by rounding to integers (1/12 for integer data, else 0).
    noise : the noise line used for the noise floor.
    sources : for ``gain``, ``offset``, ``read_noise``: ``"metadata"``, ``"given"``,
        ``"estimated"`` or ``"unknown"`` (offset and read noise cannot both be estimated:
        only ``read_noise**2 - gain * offset`` is seen in the data).
    fit : diagnostics of the variance-versus-mean fit when one was made, else None.
    metadata_source : which metadata record the ``"metadata"`` parameters came from.
    """

    gain: float | None
    offset: float | None
    read_noise: float | None
    quantisation: float
    noise: NoiseModel
    sources: dict[str, str] = field(default_factory=dict)
    fit: dict | None = None
    metadata_source: str | None = None

    def to_dict(self) -> dict:
        """Plain numbers and strings, for JSON."""
        return {
            "gain": self.gain,
            "offset": self.offset,
            "read_noise": self.read_noise,
            "quantisation_variance": self.quantisation,
            "noise_variance_slope": self.noise.slope,
            "noise_variance_intercept": self.noise.intercept,
            "sources": dict(self.sources),
            "metadata_source": self.metadata_source,
            "fit": self.fit,
        }


def clip_levels(image) -> list[float]:
    """The values at which ``image`` is clipped: where pixels pile up at its extremes.

    A strided sample (at most ~4 million values) is read. A level counts when more than
    :data:`PILE_UP` of the sampled pixels sit exactly on it and it is a limit a camera or a
    conversion clips at: for integer data (also stored as floats) 0 or ``2**k - 1`` (8 to 16
    bits); for other floating point data the minimum or maximum (continuous values do not
    repeat otherwise).
    """
    shape = tuple(int(s) for s in image.shape)
    step = max(1, int(np.ceil((np.prod(shape) / _LEVEL_SAMPLE) ** (1 / len(shape)))))
    sample = np.asarray(image[tuple(slice(None, None, step) for _ in shape)], np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return []
    extremes = sorted({float(sample.min()), float(sample.max())})
    if np.dtype(image.dtype).kind in "ui" or np.array_equal(sample, np.round(sample)):
        limits = {0.0} | {float(2**bits - 1) for bits in range(8, 17)}
        extremes = [v for v in extremes if v in limits]
    return [v for v in extremes if np.mean(sample == v) > PILE_UP]


def _window_starts(sizes: tuple[int, ...], window: int, max_windows: int) -> list[np.ndarray]:
    """Origins of non-overlapping windows along each axis, thinned evenly to ``max_windows``."""
    starts = [np.arange(0, n - window + 1, window) for n in sizes]
    total = int(np.prod([len(s) for s in starts]))
    if total > max_windows:
        keep = (max_windows / total) ** (1 / len(sizes))
        picks = [np.linspace(0, len(s) - 1, max(1, round(len(s) * keep))) for s in starts]
        starts = [s[np.unique(p.round().astype(int))] for s, p in zip(starts, picks)]
    return starts


class WindowFloors(NamedTuple):
    """Per-window figures of :func:`window_noise_floors`.

    Attributes
    ----------
    mean : ``(W,)`` ``sum(taper**2 * x) / sum(taper**2)`` of each window.
    floor : ``(W,)`` mean power per Fourier coefficient beyond :data:`OUTER_FREQUENCY`,
        divided by ``sum(taper**2)``: the window's noise variance if only noise is there.
    clipped : ``(W,)`` True where more than :data:`CLIPPED_SHARE` of the window's pixels
        are clipped.
    relative_sd : expected relative standard deviation of one window's ``floor`` for pure
        white Gaussian noise.
    inner, corner : ``(W,)`` mean power per coefficient in the shells
        ``OUTER_FREQUENCY..0.55`` and beyond 0.6 cycles/px: equal for white noise, the
        inner larger where signal reaches the spectrum's corners.
    """

    mean: np.ndarray
    floor: np.ndarray
    clipped: np.ndarray
    relative_sd: float
    inner: np.ndarray
    corner: np.ndarray


def window_noise_floors(
    image, ndim: int, window: int = 32, max_windows: int = MAX_WINDOWS
) -> WindowFloors:
    """Tapered mean and noise floor of non-overlapping windows, for the variance fit
    (:class:`WindowFloors`); at most ``max_windows`` of them, spread evenly."""
    shape = tuple(int(s) for s in image.shape)
    lead_shape, sizes = shape[:-ndim], shape[-ndim:]
    check_range("window", window, low=4, high=min(sizes))
    taper = apodization((window,) * ndim, "hann")  # periodic: a three-coefficient spectrum
    t2 = taper**2
    freq = radial_frequency((window,) * ndim, real=True)
    weights = rfft_weights((window,) * ndim)
    outer = (freq >= OUTER_FREQUENCY) * weights
    shells = [((freq >= OUTER_FREQUENCY) & (freq < 0.55)) * weights, (freq >= 0.6) * weights]
    levels = clip_levels(image)
    n_lead = max(1, int(np.prod(lead_shape)))
    starts = _window_starts(sizes, window, max(1, max_windows // n_lead))
    means, floors, clipped, inner, outermost = [], [], [], [], []
    axes = tuple(range(1, ndim + 1))
    for lead in np.ndindex(*lead_shape):
        for corner in itertools.product(*starts[:-1]):
            # one row of windows along the last axis at a time
            box = tuple(slice(int(c), int(c) + window) for c in corner)
            last = starts[-1]
            row = np.asarray(
                image[(*lead, *box, slice(int(last[0]), int(last[-1]) + window))], np.float64
            )
            wins = np.stack([row[..., s - last[0] : s - last[0] + window] for s in last])
            clip = np.zeros(wins.shape, bool)
            for level in levels:
                clip |= wins == level
            clipped.append(clip.mean(axis=axes) > CLIPPED_SHARE)
            means.append(np.tensordot(wins, t2, axes=ndim) / t2.sum())
            centred = wins - wins.mean(axis=axes, keepdims=True)
            spectrum = np.abs(np.fft.rfftn(centred * taper, axes=axes)) ** 2
            floors.append(np.sum(spectrum * outer, axis=axes) / outer.sum() / t2.sum())
            inner.append(np.sum(spectrum * shells[0], axis=axes) / shells[0].sum())
            outermost.append(np.sum(spectrum * shells[1], axis=axes) / max(shells[1].sum(), 1))
    spread = taper.size * np.sum(taper**4) / t2.sum() ** 2
    relative_sd = float(np.sqrt(2.0 * spread / outer.sum()))
    return WindowFloors(
        np.concatenate(means),
        np.concatenate(floors),
        np.concatenate(clipped),
        relative_sd,
        np.concatenate(inner),
        np.concatenate(outermost),
    )


def _weighted_line(
    mean: np.ndarray, floor: np.ndarray, slope: float | None, intercept: float | None
) -> tuple[float, float]:
    """Least squares of ``floor ~ slope * mean + intercept`` with relative errors (weights
    ``1 / predicted``), the parameters not given fitted; starts from equal weights."""
    a = 0.0 if slope is None else slope
    b = float(np.median(floor)) if intercept is None else intercept
    for _ in range(8):
        weight = 1.0 / np.maximum(a * mean + b, 1e-12 * max(float(np.abs(floor).max()), 1e-300))
        if slope is None and intercept is None:
            design = np.stack([mean, np.ones_like(mean)], 1) * weight[:, None]
            (a, b), *_ = np.linalg.lstsq(design, floor * weight, rcond=None)
        elif slope is None:
            a = float(np.sum(weight**2 * mean * (floor - b)) / np.sum((weight * mean) ** 2))
        elif intercept is None:
            b = float(np.sum(weight**2 * (floor - a * mean)) / np.sum(weight**2))
        a = max(float(a), 0.0)
    return float(a), float(b)


def fit_noise_line(
    image,
    ndim: int,
    window: int = 32,
    slope: float | None = None,
    intercept: float | None = None,
    shift: float = 0.0,
) -> tuple[NoiseModel, dict]:
    """Fit the noise line ``var = slope * value + intercept`` to one image.

    ``slope`` or ``intercept`` fix that parameter (e.g. a known gain); the line is fitted
    against ``value - shift`` (e.g. a known offset). Windows with more than
    :data:`CLIPPED_SHARE` clipped pixels are left out; windows whose floor lies more than 4
    expected standard deviations from the line (signal beyond the cut-off) are dropped and
    the line refitted.

    Returns
    -------
    model : the fitted :class:`NoiseModel`.
    diagnostics : ``windows_used``, ``windows_clipped``, ``windows_outlying``,
        ``outer_frequency_cycles_per_px``, ``scatter_over_expected`` (about 1 when the floor
        is white noise), ``outer_spectrum_ratio`` (power at 0.45-0.55 over power beyond 0.6
        cycles/px: about 1 for white noise, well above 1 when signal reaches the spectrum's
        corners, i.e. the floor is not noise alone) and the fitted points' intensity range.

    Raises
    ------
    CellvaeError
        when fewer than :data:`MIN_WINDOWS` unclipped windows remain.
    """
    floors = window_noise_floors(image, ndim, window)
    mean, floor, clipped, relative_sd = floors.mean - shift, floors.floor, *floors[2:4]
    use = ~clipped & np.isfinite(floor) & np.isfinite(mean)
    if use.sum() < MIN_WINDOWS:
        raise CellvaeError(
            f"the noise cannot be estimated: only {int(use.sum())} of {len(use)} windows of "
            f"{window} px have at most {CLIPPED_SHARE:.0%} clipped pixels; give the camera's "
            "gain, offset and read noise"
        )
    inlier = use.copy()
    for _ in range(3):
        a, b = _weighted_line(mean[inlier], floor[inlier], slope, intercept)
        predicted = np.maximum(a * mean + b, 1e-300)
        inlier = use & (np.abs(floor / predicted - 1.0) <= 4.0 * relative_sd)
        if inlier.sum() < MIN_WINDOWS:
            inlier = use
            break
    a, b = _weighted_line(mean[inlier], floor[inlier], slope, intercept)
    predicted = np.maximum(a * mean[use] + b, 1e-300)
    scatter = float(np.std(floor[use] / predicted - 1.0) / relative_sd)
    diagnostics = {
        "method": "variance-versus-mean fit of the noise floor beyond "
        f"{OUTER_FREQUENCY} cycles/px in {window} px {ndim}D windows",
        "windows_used": int(inlier.sum()),
        "windows_clipped": int(clipped.sum()),
        "windows_outlying": int((use & ~inlier).sum()),
        "outer_frequency_cycles_per_px": OUTER_FREQUENCY,
        "scatter_over_expected": scatter,
        "outer_spectrum_ratio": float(
            np.sum(floors.inner[inlier]) / max(float(np.sum(floors.corner[inlier])), 1e-300)
        ),
        "intensity_range": [float(mean[inlier].min() + shift), float(mean[inlier].max() + shift)],
    }
    return NoiseModel(a, b), diagnostics


def camera_model(
    image=None,
    ndim: int | None = None,
    gain: float | None = None,
    offset: float | None = None,
    read_noise: float | None = None,
    sources: dict[str, str] | None = None,
    quantised: bool | None = None,
    window: int = 32,
) -> CameraModel:
    """Complete a camera model: parameters not given are estimated from ``image``.

    Parameters
    ----------
    image : the original (numpy, zarr or dask), needed unless all three parameters are given.
    ndim : analysed (trailing) axes of ``image``; default ``min(image.ndim, 3)``.
    gain, offset, read_noise : known parameters (None where unknown), output units.
    sources : where each known parameter came from (``"metadata"`` or ``"given"``, the default).
    quantised : integer data (adds 1/12 to the variance); default from ``image``'s dtype.
    window : window edge of the variance fit, px; shrunk to fit the image (and to give
        :data:`SMALL_IMAGE_WINDOWS` windows), and 2D windows plane by plane on a stack
        thinner than it.

    Warns (and records ``fit["warning"]``) when the spectrum beyond the cut-off is not flat,
    i.e. the estimated noise floor holds signal (undersampled or noise-free images).
    """
    known = {"gain": gain, "offset": offset, "read_noise": read_noise}
    for name, value in known.items():
        if value is not None and name != "offset":
            check_range(name, value, low=0.0)
    source = {
        k: (sources or {}).get(k, "given") if v is not None else "unknown" for k, v in known.items()
    }
    if quantised is None:
        quantised = image is not None and np.dtype(image.dtype).kind in "ui"
    q = 1.0 / 12.0 if quantised else 0.0
    if gain is not None and offset is not None and read_noise is not None:
        noise = NoiseModel(gain, read_noise**2 + q - gain * offset)
        return CameraModel(gain, offset, read_noise, q, noise, source)
    if image is None:
        raise CellvaeError("the camera model is incomplete and there is no image to estimate it")
    ndim = min(len(image.shape), 3) if ndim is None else ndim
    if min(image.shape[-ndim:]) < window:  # a thin stack: plane-by-plane windows
        ndim = 2
    window = min(window, *image.shape[-ndim:])
    planes = int(np.prod(image.shape[:-ndim]))
    while (
        window > 8
        and planes * np.prod([n // window for n in image.shape[-ndim:]]) < SMALL_IMAGE_WINDOWS
    ):
        window -= 4  # a small image: smaller windows, enough of them for the fit
    if window < 8:
        raise CellvaeError(
            f"the image {tuple(image.shape)} is too small to estimate its noise; give the "
            "camera's gain, offset and read noise"
        )
    if offset is not None and read_noise is not None:
        # var = gain * (value - offset) + read_noise**2 + q: only the gain is fitted
        shifted, fit = fit_noise_line(
            image, ndim, window, intercept=read_noise**2 + q, shift=offset
        )
        model = NoiseModel(shifted.slope, read_noise**2 + q - shifted.slope * offset)
    else:
        model, fit = fit_noise_line(image, ndim, window, slope=gain)
    if fit["outer_spectrum_ratio"] > OUTER_RATIO_WARNING:
        fit["warning"] = (
            f"the spectrum beyond {OUTER_FREQUENCY} cycles/px is not flat (ratio "
            f"{fit['outer_spectrum_ratio']:.2g}): signal reaches it, so the estimated noise "
            "includes signal; give the camera's gain, offset and read noise"
        )
        warnings.warn(fit["warning"], stacklevel=2)
    if gain is None:
        gain, source["gain"] = model.slope, "estimated"
    if read_noise is None and offset is not None:
        read_noise = float(np.sqrt(max(model.intercept - q + gain * offset, 0.0)))
        source["read_noise"] = "estimated"
    elif offset is None and read_noise is not None and gain > 0:
        offset = float((read_noise**2 + q - model.intercept) / gain)
        source["offset"] = "estimated"
    return CameraModel(gain, offset, read_noise, q, model, source, fit)
