"""Local blur map: the high-frequency power ratio in overlapping windows.

Window ``g`` (along an analysed axis) covers image pixels ``[g * stride - before,
g * stride - before + window)`` with ``before = (window - stride) // 2``; its centre lies at
pixel index ``g * stride + origin_px`` (:attr:`BlurMap.origin_px`, ``(stride - 1) / 2`` when
``window - stride`` is even). The map is the image downsampled by ``stride``: it overlays the
image in a viewer with a scale of ``stride`` and a translation of ``origin_px`` pixels
(:meth:`BlurMap.upsample` gives it the image's shape). Windows that stick out of the image
see its mirror image. Values near 1 mean the reconstruction keeps the fine structure of that
window; low values mean detail was lost.
Inputs may be lazy (``zarr.Array``, dask): they are read block by block, so memory is bounded
by the block size, not the image size.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cellvae.errors import check_range
from cellvae.metrics.spectra import Window, batched_high_frequency_power

#: upper bound on the values (windows x window voxels) transformed at once.
_BLOCK_VALUES = 4_000_000


def window_grid(shape: tuple[int, ...], window: int, stride: int | None, ndim: int | None):
    """The checked geometry of a windowed map of an array of ``shape``: ``(ndim, stride,
    lead_shape, sizes, grid, before, per_axis)`` -- analysed axes (default
    ``min(len(shape), 3)``), step (default ``window // 2``), the leading and analysed sizes,
    windows per analysed axis, the pixels a window reaches before its stride cell, and the
    windows per axis read in one block (memory bounded by ``_BLOCK_VALUES``)."""
    ndim = min(len(shape), 3) if ndim is None else ndim
    check_range("ndim", ndim, low=2, high=min(len(shape), 3))
    stride = window // 2 if stride is None else stride
    check_range("window", window, low=4, high=min(shape[-ndim:]))
    check_range("stride", stride, low=1, high=window)
    lead_shape, sizes = shape[:-ndim], shape[-ndim:]
    grid = tuple(-(-n // stride) for n in sizes)
    before = (window - stride) // 2
    per_axis = max(1, int((_BLOCK_VALUES / window**ndim) ** (1 / ndim)))
    return ndim, stride, lead_shape, sizes, grid, before, per_axis


@dataclass
class BlurMap:
    """Windowed high-frequency power of an original and its reconstruction.

    Attributes
    ----------
    ratio : ``(*lead, *grid)`` reconstruction over original power above ``cutoff`` per window;
        NaN where the original window has no such power. ``grid = ceil(shape / stride)`` over
        the ``ndim`` analysed (trailing) axes; leading axes are kept as they are.
    original_power, recon_power : ``(*lead, *grid)`` the two powers.
    lost_power : ``(*lead, *grid)`` high-frequency power of the difference original minus
        reconstruction after weighting each pixel by how much it belongs to the original's
        foreground: detail lost (or changed) in structure, none for denoised background.
    foreground : ``(*lead, *grid)`` mean foreground weight of each window's pixels, 0 .. 1.
    window, stride : window edge and step, px; ``cutoff``: fraction of Nyquist.
    shape : shape of the input images.
    """

    ratio: np.ndarray
    original_power: np.ndarray
    recon_power: np.ndarray
    window: int
    stride: int
    cutoff: float
    shape: tuple[int, ...]
    ndim: int
    lost_power: np.ndarray | None = None
    foreground: np.ndarray | None = None

    @property
    def global_ratio(self) -> float:
        """Power ratio over all windows together (each pixel counted about equally)."""
        den = float(np.nansum(self.original_power))
        return float(np.nansum(self.recon_power)) / den if den > 0 else float("nan")

    @property
    def origin_px(self) -> float:
        """Image pixel index (pixel centres at integers) of the centre of map pixel 0."""
        return (self.window - 1) / 2 - (self.window - self.stride) // 2

    def upsample(self) -> np.ndarray:
        """The ratio map repeated ``stride`` times along the analysed axes: the input's shape."""
        out = self.ratio
        lead = len(self.shape) - self.ndim
        for axis in range(lead, len(self.shape)):
            out = np.repeat(out, self.stride, axis=axis)
        return out[tuple(slice(0, n) for n in self.shape)]

    def worst_regions(self, k: int = 5) -> list[dict]:
        """The ``k`` windows that lost the most detail in structure, not overlapping.

        A window's score is the share of its high-frequency power that the reconstruction
        lost in structure: :attr:`lost_power` (what changed, counted only where the original
        has foreground signal) over the original's power. Background where a denoising
        reconstruction removed only camera noise scores 0, so the list points at cells and
        organelles. Positions are pixels of the input.
        """
        lost = self.lost_power if self.lost_power is not None else self.original_power
        weight = self.foreground if self.foreground is not None else np.ones(lost.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = lost / self.original_power
        score = np.where(np.isfinite(self.ratio) & np.isfinite(share), share, 0.0)
        eligible = np.flatnonzero(score > 0)
        order = eligible[np.argsort(-score.flat[eligible], kind="stable")]
        regions = []
        for flat, place in pick_windows(
            order, self.ratio.shape, self.shape, self.window, self.stride, self.ndim, k
        ):
            regions.append(
                {
                    **place,
                    "hf_ratio": float(self.ratio.flat[flat]),
                    "original_hf_power": float(self.original_power.flat[flat]),
                    "hf_power_lost": float(lost.flat[flat]),
                    "foreground": float(weight.flat[flat]),
                }
            )
        return regions


def pick_windows(
    order: np.ndarray,
    grid: tuple[int, ...],
    shape: tuple[int, ...],
    window: int,
    stride: int,
    ndim: int,
    k: int,
) -> list[tuple[int, dict]]:
    """The first ``k`` windows of ``order`` (flat indices into ``grid``) that overlap none
    picked before, each with its place: ``index`` (map pixel), ``centre`` (image pixel, pixel
    centres at integers), ``start`` and ``stop`` (the window's pixels, clipped to ``shape``).
    Windows of different leading indices (planes, channels) never overlap."""
    lead = len(shape) - ndim
    reach = window / stride  # windows closer than this overlap
    before = (window - stride) // 2
    origin = (window - 1) / 2 - before
    sizes = np.array(shape[lead:])
    picked: list[np.ndarray] = []
    out: list[tuple[int, dict]] = []
    for flat in order:
        if len(out) == k:
            break
        index = np.array(np.unravel_index(flat, grid))
        if any(
            np.array_equal(p[:lead], index[:lead])
            and np.all(np.abs(p[lead:] - index[lead:]) < reach)
            for p in picked
        ):
            continue
        picked.append(index)
        start = index[lead:] * stride - before
        lead_index = [int(i) for i in index[:lead]]
        out.append(
            (
                int(flat),
                {
                    "index": index.tolist(),
                    "centre": lead_index + (index[lead:] * stride + origin).tolist(),
                    "start": lead_index + np.maximum(start, 0).tolist(),
                    "stop": [i + 1 for i in lead_index]
                    + np.minimum(start + window, sizes).tolist(),
                },
            )
        )
    return out


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into ``[0, n)`` about the edges (``-1 -> 0``, ``n -> n - 1``)."""
    period = np.mod(index, 2 * n)
    return np.where(period < n, period, 2 * n - 1 - period)


def _read(array, lead: tuple[int, ...], ranges: list[np.ndarray]) -> np.ndarray:
    """``array[lead][ix_(*ranges)]`` reading only the bounding box of ``ranges``."""
    box = tuple(slice(int(r.min()), int(r.max()) + 1) for r in ranges)
    region = np.asarray(array[(*lead, *box)], dtype=np.float64)
    return region[np.ix_(*[r - r.min() for r in ranges])]


def blur_map(
    original,
    recon,
    window: int = 32,
    stride: int | None = None,
    cutoff: float = 0.25,
    ndim: int | None = None,
    window_fn: Window = "hann",
) -> BlurMap:
    """Windowed high-frequency power ratio of ``recon`` against ``original``.

    Parameters
    ----------
    original, recon : arrays of the same shape (numpy, ``zarr.Array`` or dask), any leading
        axes followed by the ``ndim`` analysed axes, e.g. ``(Y, X)``, ``(Z, Y, X)``,
        ``(C, Z, Y, X)``.
    window : window edge, px, along each analysed axis.
    stride : step between windows, px; default ``window // 2``.
    cutoff : fraction of Nyquist above which power counts (0.25: above 0.125 cycles/px).
    ndim : 2 or 3 analysed axes; default ``min(original.ndim, 3)``. ``ndim=2`` on a 3D stack
        gives a plane-by-plane map.
    window_fn : apodisation of each window (``"hann"``, ``"tukey"`` or ``None``).
    """
    shape = tuple(int(s) for s in original.shape)
    if tuple(recon.shape) != shape:
        raise ValueError(f"shapes differ: {shape} and {tuple(recon.shape)}")
    ndim, stride, lead_shape, sizes, grid, before, per_axis = window_grid(
        shape, window, stride, ndim
    )
    levels = foreground_levels(original)
    powers = np.full((4, *lead_shape, *grid), np.nan)
    for lead in np.ndindex(*lead_shape):
        starts = [range(0, g, per_axis) for g in grid]
        for corner in itertools.product(*starts):
            block = [slice(c, min(c + per_axis, g)) for c, g in zip(corner, grid)]
            ranges = [
                _mirror(
                    np.arange(b.start * stride - before, (b.stop - 1) * stride - before + window), n
                )
                for b, n in zip(block, sizes)
            ]
            orig, rec = (_read(image, lead, ranges) for image in (original, recon))
            weight = _pixel_weight(orig, levels)
            for i, region in enumerate((orig, rec, (orig - rec) * weight)):
                windows = sliding_window_view(region, (window,) * ndim)
                windows = windows[(slice(None, None, stride),) * ndim]
                powers[(i, *lead, *block)] = batched_high_frequency_power(
                    windows, ndim, cutoff, window_fn
                )
            windows = sliding_window_view(weight, (window,) * ndim)
            windows = windows[(slice(None, None, stride),) * ndim]
            powers[(3, *lead, *block)] = windows.reshape(*windows.shape[:ndim], -1).mean(-1)
    orig_power, recon_power, lost_power, foreground = powers
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(orig_power > 0, recon_power / orig_power, np.nan)
    return BlurMap(
        ratio, orig_power, recon_power, window, stride, cutoff, shape, ndim, lost_power, foreground
    )


#: values of the original sampled to find its background and foreground levels
_LEVEL_SAMPLE = 2**22
#: the two levels must differ by this many background standard deviations to count
_SEPARATION = 4.0
#: smoothing (px) of the original before its pixels are weighted, so noise does not flicker
_WEIGHT_SIGMA = 2.0


def foreground_levels(original) -> tuple[float, float] | None:
    """``(background, foreground)`` intensity levels of ``original``, or None without a
    distinct background (texture everywhere: then every pixel counts as foreground).

    A strided sample (at most ~4 million values) is split by Otsu's threshold; the levels are
    the medians of the two parts, kept when they differ by more than four standard deviations
    of the dimmer part (its noise).
    """
    from skimage.filters import threshold_otsu

    shape = tuple(int(s) for s in original.shape)
    step = max(1, int(np.ceil((np.prod(shape) / _LEVEL_SAMPLE) ** (1 / len(shape)))))
    sample = np.asarray(original[tuple(slice(None, None, step) for _ in shape)], np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size < 2 or sample.min() == sample.max():
        return None
    dim = sample <= threshold_otsu(sample)
    low, high = float(np.median(sample[dim])), float(np.median(sample[~dim]))
    if high - low <= _SEPARATION * float(np.std(sample[dim])):
        return None
    return low, high


def _pixel_weight(region: np.ndarray, levels: tuple[float, float] | None) -> np.ndarray:
    """Per-pixel foreground weight of an original region: 0 at the background level rising
    linearly to 1 at the foreground level (after light smoothing); all ones without levels."""
    if levels is None:
        return np.ones_like(region)
    from scipy.ndimage import gaussian_filter

    low, high = levels
    return np.clip((gaussian_filter(region, _WEIGHT_SIGMA) - low) / (high - low), 0.0, 1.0)
