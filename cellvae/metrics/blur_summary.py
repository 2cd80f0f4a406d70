"""The figures of a noise-aware blur map, named for what they are: the JSON summary's numbers.

``cellvae blur`` writes them to ``blur.json``, the run report and the napari blur inspector
show them; all three read the same keys:

- ``share_of_resolvable_structure_kept``: over the whole image, 0..1 (1 = all kept);
- ``original_resolves`` / ``reconstruction_keeps``: finest detail, in the image's length unit
  (``..._px`` in pixels), and ``resolution_sentence``, e.g. "original resolves 1.4 µm,
  reconstruction keeps 3.6 µm";
- with a truth, the same figures against it and how well the two maps agree.
"""

from __future__ import annotations

import numpy as np

from cellvae.metrics.structure import DETECT, RANK, StructureMap
from cellvae.metrics.windows import WindowSpectra

#: short symbols of the NGFF length units
UNIT_SYMBOLS = {
    "micrometer": "µm",
    "nanometer": "nm",
    "millimeter": "mm",
    "angstrom": "Å",
    "meter": "m",
}


def length_text(px: float | None, pixel_size: float | None = None, unit: str | None = None) -> str:
    """``px`` pixels as a length: ``"1.45 µm"`` with a pixel size and unit, else ``"2.9 px"``."""
    if px is None or not np.isfinite(px):
        return "n/a"
    if pixel_size is None or not unit:
        return f"{px:.3g} px"
    return f"{px * pixel_size:.3g} {UNIT_SYMBOLS.get(unit, unit)}"


def resolution_sentence(
    smap: StructureMap, pixel_size: float | None = None, unit: str | None = None
) -> str:
    """ "original resolves X, reconstruction keeps Y" (or why there is nothing to say)."""
    res = smap.resolution
    if res.original_resolves_px is None:
        return "the original has no structure above its noise"
    kept = (
        length_text(res.reconstruction_keeps_px, pixel_size, unit)
        if res.reconstruction_keeps_px is not None
        else "nothing of it"
    )
    return f"original resolves {length_text(res.original_resolves_px, pixel_size, unit)}, " + (
        f"reconstruction keeps {kept}"
    )


def _value(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def blur_figures(
    smap: StructureMap, pixel_size: float | None = None, unit: str | None = None
) -> dict:
    """The noise-aware figures of ``smap`` as plain JSON values (NaN as None).

    ``pixel_size`` (in ``unit``, an NGFF unit name) turns resolutions into lengths; without
    it lengths are in pixels.
    """
    res = smap.resolution
    found = np.isfinite(smap.share)

    def physical(px):
        return None if px is None or pixel_size is None else float(px * pixel_size)

    return {
        "share_of_resolvable_structure_kept": _value(smap.global_share),
        "reconstruction_fine_detail_power_over_original_signal": _value(smap.global_ratio),
        "median_window_share_kept": _value(float(np.nanmedian(smap.share)))
        if found.any()
        else None,
        "windows_with_signal": int(found.sum()),
        "windows": int(found.size),
        "resolvable_band_cycles_per_px": list(smap.band) if smap.band else None,
        "original_resolves_px": res.original_resolves_px,
        "reconstruction_keeps_px": res.reconstruction_keeps_px,
        "original_resolves": physical(res.original_resolves_px),
        "reconstruction_keeps": physical(res.reconstruction_keeps_px),
        "length_unit": unit if pixel_size is not None and unit else "px",
        "resolution_sentence": resolution_sentence(smap, pixel_size, unit),
        "resolution": res.to_dict(),
        "signal_threshold_noise_deviations": DETECT,
        "worst_region_threshold_noise_deviations": RANK,
    }


def truth_figures(
    smap: StructureMap, pixel_size: float | None = None, unit: str | None = None
) -> dict | None:
    """The same figures against the noise-free truth and the maps' agreement, or None.

    ``map_spearman`` is the rank correlation of the two maps over the windows where both
    have a value (NaN with fewer than 3 such windows or no spread).
    """
    if smap.truth_share is None:
        return None
    from scipy.stats import spearmanr

    both = np.isfinite(smap.share) & np.isfinite(smap.truth_share)
    rho = float("nan")
    if both.sum() >= 3 and np.ptp(smap.share[both]) > 0 and np.ptp(smap.truth_share[both]) > 0:
        rho = float(spearmanr(smap.share[both], smap.truth_share[both])[0])
    keeps = smap.resolution.truth_keeps_px
    return {
        "share_of_resolvable_structure_kept": _value(smap.truth_global_share),
        "reconstruction_keeps_px": keeps,
        "reconstruction_keeps": None
        if keeps is None or pixel_size is None
        else float(keeps * pixel_size),
        "reconstruction_keeps_text": length_text(keeps, pixel_size, unit),
        "windows_with_structure": int(np.isfinite(smap.truth_share).sum()),
        "map_spearman": _value(rho),
        "map_spearman_windows": int(both.sum()),
        "median_abs_difference": _value(
            float(np.median(np.abs(smap.share[both] - smap.truth_share[both])))
        )
        if both.any()
        else None,
    }


def noisy_hf_ratio(spectra: WindowSpectra, cutoff: float = 0.25) -> tuple[float, np.ndarray]:
    """The plain high-frequency power ratio against the *noisy* original over the same
    windows (not noise-aware; kept for comparison): global, and ``(*lead, *grid)`` per window."""
    rings = spectra.frequencies >= 0.5 * cutoff
    recon = spectra.recon[..., rings].sum(-1)
    original = spectra.original[..., rings].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_window = np.where(original > 0, recon / original, np.nan)
    total = float(original.sum())
    return (float(recon.sum()) / total if total > 0 else float("nan")), per_window
