"""Blur map: where its pixels sit, and which regions it calls the worst."""

from __future__ import annotations

import numpy as np
import pytest
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
    """Background 100 with strong camera noise (std 100); four textured cells at 1000."""
    image = 100 + rng.normal(0, 100, (128, 128))
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (128, 128)), 0.8) * 200
    cells = np.zeros((128, 128), bool)
    yy, xx = np.ogrid[:128, :128]
    for y, x in ((32, 32), (32, 96), (96, 32), (96, 96)):
        cells |= (yy - y) ** 2 + (xx - x) ** 2 < 16**2
    image[cells] = 1000 + texture[cells]
    return image, cells


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_worst_regions_are_lost_structure_not_denoised_background(seed):
    """A denoising reconstruction removes all background noise (ratio 0 there, and more
    high-frequency power lost than anywhere else) and blurs the inside of one cell: the
    worst regions must lie on that cell, never on background."""
    image, cells = _cells_on_noisy_background(np.random.default_rng(seed))
    recon = np.where(cells, image, 100.0)
    inside = np.zeros_like(cells)
    inside[:64, 64:] = ndimage.binary_erosion(cells, iterations=4)[:64, 64:]
    recon[inside] = ndimage.gaussian_filter(image, 2.0)[inside]

    bmap = blur_map(image, recon, window=16, stride=8)
    worst = bmap.worst_regions(3)

    def share(mask, region):
        (y0, x0), (y1, x1) = region["start"], region["stop"]
        return mask[y0:y1, x0:x1].mean()

    assert share(inside, worst[0]) > 0.3, worst[0]
    assert all(share(cells, r) > 0.1 and r["foreground"] > 0.1 for r in worst), worst
    lowest = np.unravel_index(np.nanargmin(bmap.ratio), bmap.ratio.shape)  # what ranked first
    start = np.maximum(np.array(lowest) * 8 - 4, 0)
    assert cells[start[0] : start[0] + 16, start[1] : start[1] + 16].mean() == 0  # background


def test_texture_everywhere_counts_every_pixel():
    """No distinct background (texture over the whole image): every pixel weighs 1."""
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 0.7) * 1000 + 2000
    bmap = blur_map(image, image, window=16, stride=8)
    assert np.all(bmap.foreground == 1.0)
