"""The blur inspector's banded map equals the whole-image map; overlay geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cellvae.errors import CellvaeError
from cellvae.metrics.sharpness import blur_map
from cellvae.napari.blur import blur_map_bands, inspect, overlay_geometry, region_centre


def _run(generator):
    steps = []
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as done:
            return steps, done.value


@pytest.mark.parametrize("shape,ndim", [((150, 130), 2), ((40, 36, 44), 3), ((3, 40, 50), 2)])
def test_banded_map_equals_the_whole_image_map(rng, shape, ndim) -> None:
    original = rng.normal(size=shape)
    recon = gaussian_filter(original, 1.0)
    steps, banded = _run(blur_map_bands(original, recon, 16, None, 0.25, ndim, bands=4))
    whole = blur_map(original, recon, 16, None, 0.25, ndim)
    assert steps[-1][0] == steps[-1][1] == len(steps) > 1
    np.testing.assert_allclose(banded.ratio, whole.ratio, equal_nan=True)
    np.testing.assert_allclose(banded.original_power, whole.original_power, equal_nan=True)


def test_inspection_reports_a_blurred_image_as_blurred(rng) -> None:
    original = rng.normal(size=(96, 96))
    _, report = _run(inspect(original, gaussian_filter(original, 2.0), window=16, top=3))
    assert report.map.global_ratio < 0.2
    assert len(report.worst) == 3
    low = report.frc.frequencies < 0.1  # a filter without noise keeps low rings correlated
    assert np.nanmin(report.frc.correlation[low]) > 0.9
    _, same = _run(inspect(original, original.copy(), window=16))
    np.testing.assert_allclose(same.map.global_ratio, 1.0)


def test_shapes_that_differ_or_windows_too_large_are_one_line_errors(rng) -> None:
    with pytest.raises(CellvaeError, match="differs"):
        _run(blur_map_bands(np.zeros((32, 32)), np.zeros((32, 30))))
    with pytest.raises(CellvaeError, match="larger than the image"):
        _run(blur_map_bands(np.zeros((32, 32)), np.zeros((32, 32)), window=64))


def test_overlay_sits_on_window_centres() -> None:
    original = np.zeros((3, 64, 64))
    _, bmap = _run(blur_map_bands(original, original, 16, 8, 0.25, 2))
    scale, translate = overlay_geometry(bmap, [2.0, 0.5, 0.5], [1.0, 10.0, 0.0])
    assert scale == [2.0, 4.0, 4.0]
    assert translate == [1.0, 10.0 + 1.75, 1.75]
    region = {"index": [0, 2, 3], "centre": [0, 20.0, 28.0]}
    np.testing.assert_allclose(region_centre(region, 2), [0, 19.5, 27.5])
