"""The blur inspector's banded map equals the whole-image map; overlay geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cellvae.errors import CellvaeError
from cellvae.metrics.sharpness import blur_map
from cellvae.napari.blur import (
    VIEW_MAX_SIDE,
    blur_map_bands,
    inspect,
    overlay_geometry,
    reconstruct_crop,
    region_centre,
    view_region,
)


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


def test_view_region_is_the_visible_area_capped_around_its_centre() -> None:
    corners = np.array([[0, 10, -5], [2, 900, 700]])
    region = view_region((3, 1000, 800), corners, np.array([1.2, 0.0, 0.0]), ndim=2)
    assert region[0] == 1  # the current plane
    assert region[1] == slice(455 - VIEW_MAX_SIDE // 2, 455 + VIEW_MAX_SIDE // 2)
    assert region[2] == slice(350 - VIEW_MAX_SIDE // 2, 350 + VIEW_MAX_SIDE // 2)
    small = view_region((60, 256, 256), np.array([[0, 10, 0], [59, 100, 255]]), np.zeros(3), 3)
    assert small == (slice(0, 60), slice(10, 101), slice(0, 256))


def test_crop_reconstruction_goes_through_the_model_in_raw_units(monkeypatch, rng) -> None:
    from tests.inference.helpers import IdentityVAE, full_range_image, stand_in

    stand_in(monkeypatch, IdentityVAE(ndim=2))
    crop = full_range_image(rng, (40, 52)).astype(np.float32)
    recon = reconstruct_crop("any.ckpt", crop)  # identity model: back to the same levels
    np.testing.assert_allclose(recon, crop, atol=0.51)
    with pytest.raises(CellvaeError, match="a 2D model; the region in view is 3D"):
        reconstruct_crop("any.ckpt", np.zeros((4, 8, 8), np.float32))
