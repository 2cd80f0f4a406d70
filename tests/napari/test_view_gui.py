"""Reconstruct what is in view: the camera's view of a zoomed pyramid, off the Qt thread, in 2D
and 3D; and going to a region zooms to it and outlines it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from tests.napari.helpers import TickGaps, napari_show_ms

pytest.importorskip("napari")
pytestmark = pytest.mark.gui


@pytest.fixture
def pyramid(make_napari_viewer, qtbot):
    """A shown viewer with a 2048² four-level pyramid, zoomed x4 from "fit the image"."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 760)
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (2048, 2048)).astype(np.uint8)
    # chunked as an OME-Zarr pyramid is: napari widens corner_pixels to these chunks
    levels = [da.from_array(base[:: 2**k, :: 2**k], chunks=1024) for k in range(4)]
    layer = viewer.add_image(levels, name="original", multiscale=True, scale=(0.5, 0.5))
    qtbot.wait(200)
    viewer.reset_view()
    from cellvae.napari.navigate import camera_of

    camera = camera_of(viewer)
    camera.zoom = camera.zoom * 4
    camera.center = (600.0, 400.0)  # world units (µm): pixel (1200, 800)
    qtbot.wait(300)
    return viewer, layer


def _expected_box(viewer, layer):
    from cellvae.napari.navigate import camera_of
    from cellvae.napari.viewport import canvas_size

    camera = camera_of(viewer)
    height, width = canvas_size(viewer)
    half = np.array([height, width]) / 2 / camera.zoom / 0.5  # pixels of the image
    centre = np.asarray(camera.center)[-2:] / 0.5
    return np.floor(centre - half + 0.5), np.floor(centre + half + 0.5) + 1


def test_the_view_is_what_the_camera_shows_not_the_chunks_loaded(pyramid):
    from cellvae.napari.viewport import visible_box

    viewer, layer = pyramid
    lo, hi = visible_box(viewer, layer)
    want_lo, want_hi = _expected_box(viewer, layer)
    np.testing.assert_allclose(lo, want_lo, atol=1)
    np.testing.assert_allclose(hi, want_hi, atol=1)
    span = hi - lo
    # zoomed x4 from "fit": about a quarter of the 2048 pixels along the fitted side
    assert 2048 / 4 * 0.9 < span.min() < 2048 / 4 * 1.25 and span.max() < 2048 / 3
    level = layer.data_level
    corners = np.asarray(layer.corner_pixels) * layer.downsample_factors[level]
    assert (corners[1] - corners[0]).max() > 1.5 * span.max()  # napari's is chunk-widened


def _run(viewer, layer, ckpt, qtbot):
    from cellvae.napari import view_reconstruction
    from cellvae.napari.workers import JobPanel

    jobs = JobPanel("reconstruct in view")
    results = []

    def done(result):
        results.append(result)
        view_reconstruction.show(viewer, layer, result)

    view_reconstruction.start(viewer, layer, str(ckpt), jobs, done)
    return jobs, results


def test_reconstruct_in_view_2d_without_blocking(pyramid, qtbot, tmp_path):
    from cellvae.inference.field import overlap_for, receptive_radius
    from cellvae.inference.model import default_patch, load_model
    from cellvae.napari.blur import reconstruct_crop
    from cellvae.napari.viewport import visible_box
    from tests.inference.helpers import save_checkpoint

    viewer, layer = pyramid
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    lo, hi = visible_box(viewer, layer)
    # showing a result costs napari at least one layer insertion and paint in one turn
    floor = napari_show_ms(viewer, tuple(hi - lo))
    gc.collect()
    with TickGaps() as ticks:
        jobs, results = _run(viewer, layer, ckpt, qtbot)
        qtbot.waitUntil(lambda: bool(results) and not jobs.busy, timeout=120_000)
        qtbot.wait(100)
    (result,) = results
    assert result.crop.shape == tuple(hi - lo) == result.recon.shape
    assert jobs.bar.value() == 100
    # the model saw its overlap of context around the view: the same as reconstructing the
    # widened region in one go and cutting the view out of it
    vae, hparams = load_model(ckpt)
    patch = default_patch(vae, hparams)
    margin = overlap_for(receptive_radius(vae, patch), patch)
    read = tuple(slice(max(0, a - m), b + m) for a, b, m in zip(lo, hi, margin))
    context = np.asarray(layer.data[0][read], np.float32)
    whole = reconstruct_crop(ckpt, context, None)
    inner = tuple(slice(a - r.start, b - r.start) for a, b, r in zip(lo, hi, read))
    np.testing.assert_allclose(result.recon, whole[inner], rtol=1e-5, atol=1e-3)
    shown = viewer.layers["reconstruction (in view)"]
    np.testing.assert_allclose(shown.translate, lo * 0.5)
    np.testing.assert_allclose(shown.scale, [0.5, 0.5])
    limit = max(100, 1.25 * floor)
    print(f"longest gap {ticks.longest_cpu_ms:.0f} ms CPU ({ticks.longest_ms:.0f} ms wall)")
    assert ticks.longest_cpu_ms <= limit, (ticks.longest_cpu_ms, floor)


def test_reconstruct_in_view_can_be_cancelled(pyramid, qtbot, tmp_path):
    from tests.inference.helpers import save_checkpoint
    from tests.napari.helpers import PRESET_2D

    viewer, layer = pyramid
    jobs, results = _run(viewer, layer, save_checkpoint(tmp_path / "m.ckpt", **PRESET_2D), qtbot)
    qtbot.waitUntil(lambda: jobs.bar.value() > 0, timeout=60_000)
    jobs.cancel()
    qtbot.waitUntil(lambda: not jobs.busy, timeout=60_000)
    assert results == [] and jobs.status.text() == "cancelled"
    assert "reconstruction (in view)" not in viewer.layers


def test_reconstruct_in_view_3d_takes_a_slab_around_the_plane(make_napari_viewer, qtbot, tmp_path):
    from cellvae.napari.navigate import camera_of
    from tests.inference.helpers import save_checkpoint

    viewer = make_napari_viewer(show=True)
    volume = np.random.default_rng(1).integers(0, 255, (40, 256, 256)).astype(np.uint8)
    layer = viewer.add_image(volume, name="original", scale=(2.0, 0.5, 0.5))
    viewer.dims.set_point(0, 2.0 * 20)
    qtbot.wait(200)
    viewer.reset_view()
    camera_of(viewer).zoom *= 4
    qtbot.wait(200)
    jobs, results = _run(viewer, layer, save_checkpoint(tmp_path / "3d.ckpt", ndim=3), qtbot)
    qtbot.waitUntil(lambda: bool(results) and not jobs.busy, timeout=120_000)
    (result,) = results
    assert result.crop.ndim == 3 and result.crop.shape[0] == 16  # the model's patch depth
    assert result.region.read[0].start <= 20 < result.region.read[0].stop
    assert result.crop.shape[1] < 256 and result.crop.shape == result.recon.shape
    np.testing.assert_allclose(viewer.layers["reconstruction (in view)"].scale, [2.0, 0.5, 0.5])


def test_a_model_of_another_dimensionality_is_one_line(pyramid, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    from tests.inference.helpers import save_checkpoint

    viewer, layer = pyramid
    before = len(notification_manager.records)
    jobs, results = _run(viewer, layer, save_checkpoint(tmp_path / "3d.ckpt", ndim=3), qtbot)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=60_000)
    qtbot.wait(200)
    assert results == []
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert messages == [
        f"reconstruct in view: {tmp_path / '3d.ckpt'}: a 3D model; the image in view is 2D"
    ]


def test_going_to_a_region_zooms_to_it_and_outlines_it(pyramid, qtbot):
    from cellvae.napari.navigate import FILL, camera_of, go_to, outline
    from cellvae.napari.viewport import canvas_size

    viewer, layer = pyramid
    go_to(viewer, layer, (300.0, 500.0), extent=(64, 32))
    camera = camera_of(viewer)
    np.testing.assert_allclose(camera.center[-2:], (150.0, 250.0))
    height, width = canvas_size(viewer)
    assert camera.zoom == pytest.approx(FILL * min(height / 32, width / 16))
    shapes = outline(viewer, layer, (268, 484), (332, 516))
    np.testing.assert_allclose(shapes.data[0][:, -2:].min(0), (268, 484))
    np.testing.assert_allclose(shapes.data[0][:, -2:].max(0), (332, 516))
    again = outline(viewer, layer, (0, 0), (10, 10))
    assert again is shapes and len(shapes.data) == 1
    assert viewer.layers.selection.active is layer  # the outline did not take the focus


def test_the_explorer_reconstructs_what_is_in_view(pyramid, qtbot, tmp_path):
    from cellvae.napari.latent_explorer import LatentExplorer
    from cellvae.napari.viewport import visible_box
    from tests.inference.helpers import save_checkpoint

    viewer, layer = pyramid
    widget = LatentExplorer(viewer)
    widget.ckpt.setText(str(save_checkpoint(tmp_path / "m.ckpt")))
    lo, hi = visible_box(viewer, layer)
    widget.reconstruct_view()
    qtbot.waitUntil(
        lambda: not widget.jobs.busy and "reconstruction (in view)" in viewer.layers,
        timeout=120_000,
    )
    shown = viewer.layers["reconstruction (in view)"]
    assert shown.data.shape == tuple(hi - lo)
    np.testing.assert_allclose(shown.translate, lo * 0.5)
