"""Sharpness of a reconstruction against its original: one import for the three measures.

- :func:`frc` — Fourier ring/shell correlation with the 1/7 and half-bit thresholds
  (:mod:`cellvae.metrics.frc`);
- :func:`radial_power_spectrum`, :func:`hf_power_ratio` — power per frequency and the power
  above a fraction of Nyquist, reconstruction over original (:mod:`cellvae.metrics.spectra`);
- :func:`blur_map` — that ratio in overlapping windows, showing where fine structure was lost
  (:mod:`cellvae.metrics.blurmap`).
"""

from cellvae.metrics.blurmap import BlurMap, blur_map
from cellvae.metrics.frc import FRCResult, frc, half_bit_threshold
from cellvae.metrics.spectra import apodization, hf_power_ratio, radial_power_spectrum

__all__ = [
    "BlurMap",
    "FRCResult",
    "apodization",
    "blur_map",
    "frc",
    "half_bit_threshold",
    "hf_power_ratio",
    "radial_power_spectrum",
]
