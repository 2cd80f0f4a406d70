"""The blur inspector's logic: its map is the command's map, its texts name what they show,
the stored summary is found; overlay geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cellvae.errors import CellvaeError
from cellvae.metrics.noise import camera_model
from cellvae.metrics.sharpness import blur_map
from cellvae.metrics.structure import structure_map
from cellvae.napari.blur import (
    MAP_MEANING,
    VIEW_MAX_SIDE,
    inspect,
    overlay_geometry,
    reconstruct_crop,
    region_centre,
    region_label,
    stored_summary,
    summary_lines,
    view_region,
)


@pytest.mark.parametrize("shape", [(2500, 100), (200, 24, 24), (3, 40, 50)])  # several blocks
def test_inspection_is_the_blur_command_map_with_progress_to_the_end(rng, shape) -> None:
    original = 100 + rng.normal(size=shape)
    recon = gaussian_filter(original, 1.0)
    steps: list[float] = []
    report = inspect(original, recon, window=16, on_progress=steps.append)
    ndim = 3 if min(shape) >= 16 and len(shape) == 3 else 2
    camera = camera_model(original, ndim)
    whole = structure_map(original, recon, camera.noise, None, 16, None, 0.25, ndim)
    assert report.map.ndim == ndim
    np.testing.assert_array_equal(report.map.share, whole.share)
    assert report.camera.noise == camera.noise
    assert report.figures["camera"]["sources"]["gain"] == "estimated"
    assert len(steps) > 1 and steps == sorted(steps) and steps[-1] == 1.0
    assert steps[0] < 0.75  # reported along the way, not only at the end


def test_inspection_reports_lost_structure_not_removed_noise() -> None:
    """Synthetic mitochondria with their camera as metadata: the truth itself (a perfect
    denoiser) keeps everything, the truth blurred by 2 px keeps little."""
    from cellvae.data.synthetic import mitochondria

    synth = mitochondria((256, 256), seed=3, photons=200)
    camera = {"gain": synth.metadata["gain"], "offset": 0.0, "read_noise": 2.0, "source": "x"}
    perfect = inspect(synth.image, synth.clean, window=32, camera=camera)
    assert perfect.figures["share_of_resolvable_structure_kept"] >= 0.95
    assert perfect.camera.sources["gain"] == "metadata" and perfect.camera.fit is None
    assert perfect.figures["camera"]["metadata_source"] == "x"
    blurred = inspect(
        synth.image, gaussian_filter(synth.clean, 2.0), window=32, top=3, camera=camera
    )
    assert blurred.figures["share_of_resolvable_structure_kept"] <= 0.3
    assert len(blurred.worst) == 3 and all(r["share_kept"] <= 0.3 for r in blurred.worst)
    assert np.isnan(blurred.map.share).any()  # background: no signal, not "all lost"


def test_summary_lines_and_region_labels_say_what_they_show() -> None:
    summary = {
        "share_of_resolvable_structure_kept": 0.4567,
        "windows_with_signal": 12,
        "windows": 30,
        "resolution_sentence": "original resolves 0.3 µm, reconstruction keeps 0.7 µm",
        "camera": {
            "gain": 0.5,
            "offset": None,
            "read_noise": None,
            "sources": {"gain": "estimated", "offset": "unknown", "read_noise": "unknown"},
        },
        "truth": {"share_of_resolvable_structure_kept": 0.44, "map_spearman": 0.91},
    }
    assert summary_lines(summary) == [
        f"{MAP_MEANING}: 0.46 (1 = all kept; 12 of 30 windows have signal above noise)",
        "original resolves 0.3 µm, reconstruction keeps 0.7 µm",
        "camera: gain 0.5 (estimated), offset n/a (unknown), read noise n/a (unknown)",
        "against the truth: share kept 0.44, maps agree (Spearman) 0.91",
    ]
    old = {"global_hf_ratio": 0.134}
    assert summary_lines(old) == [
        "global HF power ratio 0.134 against the noisy original (an old summary: not noise-aware)"
    ]
    region = {"centre": [10.4, 20.6], "share_kept": 0.25, "signal_to_noise": 12.3}
    assert region_label(region) == "kept 0.25 (signal 12x noise) at (10, 21)"
    assert region_label({"centre": [1, 2], "hf_ratio": 0.88}) == "HF ratio 0.88 at (1, 2)"


def test_stored_summary_is_read_from_the_results_folder(tmp_path) -> None:
    assert stored_summary(None) is None and stored_summary(tmp_path) is None
    (tmp_path / "blur.json").write_text("{not json")
    assert stored_summary(tmp_path) is None
    (tmp_path / "blur.json").write_text('{"share_of_resolvable_structure_kept": 0.5}')
    assert stored_summary(tmp_path) == {"share_of_resolvable_structure_kept": 0.5}


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
