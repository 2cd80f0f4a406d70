"""The noise-aware blur map against ground truth (issue 20's "done when").

Synthetic mitochondria (512², seed 3, as in the issue) come with their noise-free truth; the
"reconstruction" is the truth itself (a perfect denoiser: nothing lost) or the truth blurred
by a Gaussian (structure really lost). The camera model is the generator's (gain, read noise
2, integer data). Each test states a known answer the map must give at 30, 200 and 1000
photons; ``test_ignoring_the_noise_breaks_the_known_answers`` shows that the same checks
fail when the noise estimate is broken on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage, stats

from cellvae.data.synthetic import mitochondria
from cellvae.metrics.noise import NoiseModel
from cellvae.metrics.structure import structure_map

PHOTONS = (30, 200, 1000)
WINDOW, STRIDE = 32, 16


def _sample(photons: float, shape=(512, 512), seed: int = 3, **options):
    synth = mitochondria(shape, seed=seed, photons=photons, **options)
    noise = NoiseModel(synth.metadata["gain"], synth.metadata["read_noise"] ** 2 + 1 / 12)
    return synth, noise, synth.clean.astype(np.float64)


def _background_windows(labels: np.ndarray) -> np.ndarray:
    """Map pixels whose window holds no tubule pixel (labels grown by 3 px for the PSF)."""
    grown = ndimage.binary_dilation(labels > 0, iterations=3)
    before = (WINDOW - STRIDE) // 2
    padded = np.pad(grown, [(before, WINDOW)] * 2, mode="symmetric")
    windows = sliding_window_view(padded, (WINDOW, WINDOW))[::STRIDE, ::STRIDE]
    grid = tuple(-(-n // STRIDE) for n in labels.shape)
    return ~windows.any(axis=(2, 3))[: grid[0], : grid[1]]


def _checks_perfect(bmap, background) -> list[str]:
    """What a perfect denoiser's map must show; the failed checks, empty when all hold."""
    share = bmap.share[np.isfinite(bmap.share)]
    failed = []
    if share.size < 100:
        failed.append(f"only {share.size} windows with signal")
    if not np.median(share) >= 0.9:
        failed.append(f"median share {np.median(share):.2f} < 0.9")
    if not np.mean(share >= 0.8) >= 0.8:
        failed.append(f"only {np.mean(share >= 0.8):.0%} of windows keep >= 0.8")
    if not np.mean(np.isnan(bmap.share[background])) >= 0.98:
        failed.append(f"{np.mean(np.isnan(bmap.share[background])):.0%} of background is no-signal")
    if not bmap.global_share >= 0.9:
        failed.append(f"global share {bmap.global_share:.2f} < 0.9")
    return failed


@pytest.mark.parametrize("photons", PHOTONS)
def test_a_perfect_denoiser_keeps_all_structure_and_background_has_no_signal(photons):
    synth, noise, clean = _sample(photons)
    bmap = structure_map(synth.image, clean, noise, window=WINDOW, stride=STRIDE)
    background = _background_windows(synth.labels)
    assert background.sum() > 200  # the image has plenty of background to get wrong
    assert _checks_perfect(bmap, background) == []
    resolution = bmap.resolution
    assert resolution.reconstruction_keeps_px == resolution.original_resolves_px


@pytest.mark.parametrize("photons", PHOTONS)
@pytest.mark.parametrize(("sigma", "most"), [(1.0, 0.6), (2.0, 0.3)])
def test_blurred_truth_keeps_at_most_its_share(photons, sigma, most):
    synth, noise, clean = _sample(photons)
    bmap = structure_map(synth.image, ndimage.gaussian_filter(clean, sigma), noise)
    assert np.nanmedian(bmap.share) <= most
    assert bmap.global_share <= most
    assert np.isfinite(bmap.share).sum() > 100
    # a Gaussian keeps half the power at f = sqrt(ln 2) / (2 pi sigma): 7.5 px for sigma 1
    expected = 2 * np.pi * sigma / np.sqrt(np.log(2))
    assert bmap.resolution.reconstruction_keeps_px == pytest.approx(expected, rel=0.12)


@pytest.mark.parametrize("photons", PHOTONS)
def test_worst_regions_all_lie_in_the_blurred_half(photons):
    synth, noise, clean = _sample(photons)
    recon = clean.copy()
    recon[:, 256:] = ndimage.gaussian_filter(clean, 1.0)[:, 256:]
    worst = structure_map(synth.image, recon, noise).worst_regions(8)
    assert len(worst) == 8
    assert [r["centre"][1] >= 256 for r in worst] == [True] * 8, worst
    assert all(r["share_kept"] < 0.7 and r["signal_to_noise"] >= 6 for r in worst)


def _graded_blur(clean: np.ndarray) -> np.ndarray:
    """The truth blurred by sigma rising from 0 to 2 px along the last axis (steps of 0.5)."""
    blurs = np.stack([ndimage.gaussian_filter(clean, s) for s in (0.0, 0.5, 1.0, 1.5, 2.0)])
    step = np.round(np.linspace(0, 4, clean.shape[-1])).astype(int)
    return np.take_along_axis(blurs, np.broadcast_to(step, clean.shape)[None], axis=0)[0]


def _spearman(bmap) -> float:
    both = np.isfinite(bmap.share) & np.isfinite(bmap.truth_share)
    assert both.sum() > 50
    return float(stats.spearmanr(bmap.share[both], bmap.truth_share[both])[0])


@pytest.mark.parametrize("photons", PHOTONS)
def test_noisy_original_map_ranks_windows_as_the_truth_map_does_2d(photons):
    synth, noise, clean = _sample(photons)
    bmap = structure_map(synth.image, _graded_blur(clean), noise, truth=clean)
    assert _spearman(bmap) >= 0.8
    assert bmap.resolution.reconstruction_keeps_px == pytest.approx(
        bmap.resolution.truth_keeps_px, rel=0.1
    )


@pytest.mark.parametrize("photons", PHOTONS)
def test_noisy_original_map_ranks_windows_as_the_truth_map_does_3d(photons):
    """A smaller volume than the benchmark's 64 x 256 x 256 (same PSF, 16 px windows)."""
    synth, noise, clean = _sample(photons, (32, 128, 128), psf_sigma=(2.0, 1.0, 1.0))
    bmap = structure_map(synth.image, _graded_blur(clean), noise, truth=clean, window=16)
    assert bmap.ndim == 3
    assert _spearman(bmap) >= 0.8
    perfect = structure_map(synth.image, clean, noise, window=16)
    assert np.nanmedian(perfect.share) >= 0.9


def test_ignoring_the_noise_breaks_the_known_answers():
    """The tests above can fail: with the noise estimate broken (no noise floor, or half of
    it) the perfect denoiser at 30 photons fails its checks and the worst regions stray into
    the perfect half."""
    synth, noise, clean = _sample(30)
    background = _background_windows(synth.labels)
    for broken in (NoiseModel(0.0, 0.0), NoiseModel(noise.slope / 2, noise.intercept / 2)):
        bmap = structure_map(synth.image, clean, broken)
        assert _checks_perfect(bmap, background) != []
    recon = clean.copy()
    recon[:, 256:] = ndimage.gaussian_filter(clean, 1.0)[:, 256:]
    worst = structure_map(synth.image, recon, NoiseModel(0.0, 0.0)).worst_regions(8)
    assert not all(r["centre"][1] >= 256 for r in worst)
