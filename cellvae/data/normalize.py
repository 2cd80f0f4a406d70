"""Percentile normalisation: raw intensities -> integer levels -> model inputs in [-1, 1].

The mapping is the contract of ``docs/architecture.md``. With ``L = 2**bits`` levels::

    k = clip(round((v - lo) / (hi - lo) * (L - 1)), 0, L - 1)   # integer level
    x = 2 * k / (L - 1) - 1                                      # model input, in [-1, 1]
    v ~ lo + (x + 1) / 2 * (hi - lo)                             # back to raw units

``x`` always lies exactly on the grid ``2k / (L - 1) - 1``, so a discretized likelihood can
recover ``k = round((x + 1) / 2 * (L - 1))`` without loss. ``round`` is numpy's
round-half-to-even. Levels are computed in float64; for integer data of at most 16 bits
:meth:`Quantizer.quantize` uses a lookup table built from the same float64 formula, so the
fast path and the formula agree bit for bit.

A constant image (``lo == hi``) has no contrast to normalise: :class:`Quantizer` then warns
and uses ``hi = lo + 1`` (one raw unit spans the whole level range), so the image maps to
level 0 and inference still runs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from cellvae.errors import CellvaeError, ConfigError, check_range

#: Largest supported bit depth: levels must stay exact in float32 model inputs.
MAX_BITS = 16


class Quantizer:
    """Map raw intensities to ``L = 2**bits`` integer levels and to model inputs in [-1, 1].

    Parameters
    ----------
    lo, hi
        Raw intensities mapped to the first and last level (usually the 0.1 and 99.9
        percentiles). ``lo == hi`` warns and falls back to ``hi = lo + 1``.
    bits
        Bit depth of the level grid, 1..16.
    """

    def __init__(self, lo: float, hi: float, bits: int = 8) -> None:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CellvaeError(f"intensity range [{lo}, {hi}] is not finite (all-NaN image?)")
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise ConfigError(f"bits: {bits!r} is not an integer")
        check_range("bits", bits, 1, MAX_BITS)
        if hi < lo:
            raise CellvaeError(f"intensity range is inverted: lo={lo} > hi={hi}")
        if hi == lo:
            warnings.warn(
                f"constant intensity {lo}: normalisation undefined, using hi = lo + 1",
                RuntimeWarning,
                stacklevel=2,
            )
            hi = lo + 1.0
        self.lo = float(lo)
        self.hi = float(hi)
        self.bits = int(bits)
        self._luts: dict[np.dtype, np.ndarray] = {}

    @property
    def n_levels(self) -> int:
        """Number of levels ``L = 2**bits``."""
        return 2**self.bits

    @property
    def bin_width(self) -> float:
        """Spacing of the level grid in model units, ``2 / (L - 1)``."""
        return 2.0 / (self.n_levels - 1)

    @classmethod
    def from_stats(
        cls,
        stats: dict[str, Any],
        channel: int = 0,
        low_pct: float = 0.1,
        high_pct: float = 99.9,
        bits: int | None = 8,
    ) -> Quantizer:
        """Build from stored intensity statistics (the image group's ``cellvae`` attribute).

        ``bits=None`` takes the level count from the data: :func:`range_bits` of the
        percentile range, at most the data's own bit depth (``stats["bits"]``).
        """
        channels = stats.get("channels", [])
        if not 0 <= channel < len(channels):
            raise ConfigError(f"channel: {channel} is out of range; the image has {len(channels)}")
        ch = channels[channel]
        lo = stored_percentile(ch, low_pct, "low_percentile")
        hi = stored_percentile(ch, high_pct, "high_percentile")
        if bits is None:
            bits = range_bits(stats, lo, hi)
        return cls(lo, hi, bits)

    def levels(self, v: Any) -> np.ndarray:
        """Integer levels ``k`` (int32, same shape) of raw intensities ``v``."""
        t = (np.asarray(v, dtype=np.float64) - self.lo) / (self.hi - self.lo) * (self.n_levels - 1)
        return np.clip(np.rint(t), 0, self.n_levels - 1).astype(np.int32)

    def levels_to_input(self, k: Any) -> Any:
        """Model inputs ``x = 2k/(L-1) - 1`` of levels ``k`` (numpy or torch)."""
        return (2 * k - (self.n_levels - 1)) / (self.n_levels - 1)

    def input_to_levels(self, x: Any) -> Any:
        """Levels ``k = round((x + 1)/2 * (L-1))`` of model inputs (numpy or torch, float)."""
        return ((x + 1.0) * (0.5 * (self.n_levels - 1))).round().clip(0, self.n_levels - 1)

    def input_to_raw(self, x: Any) -> Any:
        """Raw intensities ``lo + (x + 1)/2 * (hi - lo)`` of model inputs (numpy or torch)."""
        return self.lo + (x + 1.0) * (0.5 * (self.hi - self.lo))

    def quantize(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Model inputs ``x`` (float32, same shape, on the level grid) of raw intensities ``v``.

        Integer data of at most 16 bits goes through a lookup table (one gather per voxel).
        ``out`` (float32, shape of ``v``) receives the result without a copy.
        """
        v = np.asarray(v)
        if v.dtype.kind in "ui" and v.dtype.itemsize <= 2:
            index = v if v.dtype.kind == "u" else v.astype(np.int32) - np.iinfo(v.dtype).min
            # every value of the dtype has an entry, so no index is out of range; mode="clip"
            # only spares numpy the buffered copy it makes of ``out`` under mode="raise"
            # (11x slower for a fresh 64^3 float32 patch)
            return np.take(self._lut(v.dtype), index, out=out, mode="clip")
        x = self._levels_to_float32(self.levels(v))
        if out is None:
            return x
        out[...] = x
        return out

    def _levels_to_float32(self, k: np.ndarray) -> np.ndarray:
        """float32 ``x = (2k - (L-1)) / (L-1)``: one correctly rounded division, used everywhere."""
        x = (2 * k - (self.n_levels - 1)).astype(np.float32)
        x /= np.float32(self.n_levels - 1)
        return x

    def _lut(self, dtype: np.dtype) -> np.ndarray:
        """float32 table of ``x`` for every value of a <= 16-bit integer dtype."""
        if dtype not in self._luts:
            info = np.iinfo(dtype)
            values = np.arange(info.min, info.max + 1, dtype=np.float64)
            self._luts[dtype] = self._levels_to_float32(self.levels(values))
        return self._luts[dtype]

    def __repr__(self) -> str:
        return f"Quantizer(lo={self.lo!r}, hi={self.hi!r}, bits={self.bits})"


def range_bits(stats: dict[str, Any], lo: float, hi: float) -> int:
    """Bit depth of the level grid for integer data normalised over the raw range ``[lo, hi]``.

    The fewest bits whose ``2**bits`` levels give every raw integer value in ``[lo, hi]`` a
    level of its own, ``ceil(log2(hi - lo + 1))``, at most the data's bit depth. A 16-bit
    camera image whose percentiles span 3000 counts gets 12 bits: with 16, its 3001 raw
    values would be spread over 65536 levels, a comb of mostly empty levels that a
    discretized likelihood pays for (about 4.4 bits/dim). Raises :class:`ConfigError` for
    floating-point data (no bit depth).
    """
    data_bits = stats.get("bits")
    if not isinstance(data_bits, int) or not 1 <= data_bits <= MAX_BITS:
        raise ConfigError(
            f"bits: the data's bit depth {data_bits!r} (dtype {stats.get('dtype')}) "
            f"cannot be used; set bits to an integer in [1, {MAX_BITS}]"
        )
    span = max(float(hi) - float(lo), 0.0)
    return min(data_bits, max(1, math.ceil(math.log2(math.floor(span) + 1))))


def stored_percentile(channel_stats: dict[str, Any], pct: float, field: str) -> float:
    """The stored percentile ``pct`` of one channel's statistics (keys like ``"99.9"``)."""
    table = {float(key): value for key, value in channel_stats.get("percentiles", {}).items()}
    if float(pct) not in table:
        allowed = sorted(table)
        raise ConfigError(f"{field}: {pct!r} is not stored; choose one of {allowed}")
    return float(table[float(pct)])
