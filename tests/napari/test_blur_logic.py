"""The blur inspector's banded map equals the whole-image map; overlay geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cellvae.errors import CellvaeError
from cellvae.metrics.sharpness import blur_map
from cellvae.napari.blur import (
    VIEW_MAX_SIDE,
    inspect,
    overlay_geometry,
    reconstruct_crop,
    region_centre,
    view_region,
)


@pytest.mark.parametrize("shape", [(2500, 100), (200, 24, 24), (3, 40, 50)])  # several blocks
def test_inspection_is_the_blur_command_map_with_progress_to_the_end(rng, shape) -> None:
    original = rng.normal(size=shape)
    recon = gaussian_filter(original, 1.0)
    steps: list[float] = []
    report = inspect(original, recon, window=16, on_progress=steps.append)
    ndim = 3 if min(shape) >= 16 and len(shape) == 3 else 2
    whole = blur_map(original, recon, 16, None, 0.25, ndim)
    assert report.map.ndim == ndim
    np.testing.assert_array_equal(report.map.ratio, whole.ratio)
    assert len(steps) > 1 and steps == sorted(steps) and steps[-1] == 1.0
    assert steps[0] < 0.75  # reported along the way, not only at the end


def test_inspection_reports_a_blurred_image_as_blurred(rng) -> None:
    original = rng.normal(size=(96, 96))
    report = inspect(original, gaussian_filter(original, 2.0), window=16, top=3)
    assert report.map.global_ratio < 0.2
    assert len(report.worst) == 3
    low = report.frc.frequencies < 0.1  # a filter without noise keeps low rings correlated
    assert np.nanmin(report.frc.correlation[low]) > 0.9
    same = inspect(original, original.copy(), window=16)
    np.testing.assert_allclose(same.map.global_ratio, 1.0)


def test_shapes_that_differ_or_windows_too_large_are_one_line_errors() -> None:
    with pytest.raises(CellvaeError, match="differs"):
        inspect(np.zeros((32, 32)), np.zeros((32, 30)))
    with pytest.raises(CellvaeError, match="larger than the image"):
        inspect(np.zeros((32, 32)), np.zeros((32, 32)), window=64)


def test_overlay_and_worst_regions_sit_on_window_centres(rng) -> None:
    original = rng.normal(size=(3, 64, 64))
    bmap = blur_map(original, gaussian_filter(original, 1.0), 16, 8, 0.25, 2)
    scale, translate = overlay_geometry(bmap, [2.0, 0.5, 0.5], [1.0, 10.0, 0.0])
    assert scale == [2.0, 4.0, 4.0]
    assert translate == [1.0, 10.0 + 1.75, 1.75]  # window 16, stride 8: centre at 3.5 px
    region = bmap.worst_regions(1)[0]
    expected = np.asarray(region["index"], float)
    expected[1:] = expected[1:] * 8 + 3.5
    np.testing.assert_allclose(region_centre(region, bmap), expected)


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
