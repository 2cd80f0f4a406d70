"""cell_population: labelled single-cell crops for the embedding benchmark."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cellvae.data.synthetic import PHENOTYPES, cell_population


def test_balanced_classes_noise_levels_and_reproducible() -> None:
    pop = cell_population(4, size=32, photons=(30.0, 1000.0), seed=3)
    assert pop.images.shape == (12, 32, 32) and pop.images.dtype == np.uint8
    assert pop.class_names == list(PHENOTYPES)
    assert np.bincount(pop.classes).tolist() == [4, 4, 4]
    assert sorted(set(pop.photons.tolist())) == [30.0, 1000.0]
    np.testing.assert_array_equal(
        pop.images, cell_population(4, photons=(30.0, 1000.0), seed=3).images
    )
    # fewer photons at the same peak grey value: noisier background
    low, high = pop.images[pop.photons == 30.0], pop.images[pop.photons == 1000.0]
    assert low[:, :3, :3].std() > 2 * high[:, :3, :3].std()


def test_jitter_keeps_cells_near_the_centre() -> None:
    pop = cell_population(5, size=40, cell_size=20, photons=(1000.0,), jitter=1, seed=0)
    for image in pop.images:
        mask = ndimage.binary_opening(image > 40, iterations=1)
        cy, cx = ndimage.center_of_mass(mask)
        assert abs(cy - 19.5) < 4 and abs(cx - 19.5) < 4
    spread = cell_population(30, size=40, cell_size=20, photons=(1000.0,), seed=0)
    centres = [ndimage.center_of_mass(im > 40) for im in spread.images]
    assert np.ptp([c[1] for c in centres]) > 10  # without jitter: anywhere in the crop
