"""Blur map: where its pixels sit, and which regions it calls the worst."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cellvae.metrics.blurmap import blur_map


def test_map_pixel_centres_are_the_window_centres():
    """Only the window over pixels [44, 60)² lost detail: the map's minimum sits at that
    window, and ``origin_px`` places it at the centre of those pixels (index 51.5)."""
    rng = np.random.default_rng(0)
    original = rng.normal(size=(128, 128))
    recon = original.copy()
    recon[44:60, 44:60] = 0.0
    bmap = blur_map(original, recon, window=16, stride=8)
    g = np.unravel_index(np.argmin(bmap.ratio), bmap.ratio.shape)
    assert g == (6, 6)
    centre = np.array(g) * bmap.stride + bmap.origin_px
    np.testing.assert_allclose(centre, [51.5, 51.5])


def _cells_on_noisy_background(rng):
    """Background 100 with strong camera noise; four textured bright cells at 1000."""
    image = 100 + rng.normal(0, 20, (128, 128))
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (128, 128)), 0.8) * 400
    cells = np.zeros((128, 128), bool)
    for y, x in ((32, 32), (32, 96), (96, 32), (96, 96)):
        yy, xx = np.ogrid[:128, :128]
        cells |= (yy - y) ** 2 + (xx - x) ** 2 < 14**2
    image[cells] = 1000 + texture[cells]
    return image, cells


def test_worst_regions_are_lost_structure_not_denoised_background():
    """A denoising reconstruction removes all background noise (ratio 0 there) and blurs one
    cell: the worst regions must be in that cell, not in the background."""
    rng = np.random.default_rng(1)
    image, cells = _cells_on_noisy_background(rng)
    recon = np.where(cells, image, 100.0)
    blurred = ndimage.gaussian_filter(image, 2.0)
    cell = np.zeros_like(cells)
    cell[:64, 64:] = cells[:64, 64:]
    recon[cell] = blurred[cell]

    worst = blur_map(image, recon, window=16, stride=8).worst_regions(3)

    assert len(worst) == 3
    for region in worst:
        y0, x0 = region["start"]
        y1, x1 = region["stop"]
        assert cell[y0:y1, x0:x1].mean() > 0.3, region  # inside the blurred cell
        assert region["foreground"] > 0.3


def test_texture_everywhere_counts_every_window():
    """No distinct background (texture over the whole image): all windows weigh 1."""
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 0.7) * 1000 + 2000
    bmap = blur_map(image, image, window=16, stride=8)
    assert np.all(bmap.foreground() == 1.0)
