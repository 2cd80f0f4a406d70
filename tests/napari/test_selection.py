"""The latent browser's array logic against known answers (no viewer)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from matplotlib.path import Path

from cellvae.napari.selection import (
    DensityGrid,
    apply_lut,
    centre_of,
    crop_plane,
    highlight,
    in_box,
    in_lasso,
    nearest,
    rows_of_labels,
    selection_lut,
)


def test_box_selects_exactly_the_points_inside_whatever_the_corner_order() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [0.5, 3.0]])
    assert in_box(xy, (2.0, 1.0), (0.0, 0.0)).tolist() == [True, True, True, False]


def test_lasso_agrees_with_exact_point_in_polygon_on_a_star(rng) -> None:
    xy = rng.normal(size=(200_000, 2))
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    radius = 1 + 0.5 * np.sin(5 * t)
    star = np.c_[radius * np.cos(t), radius * np.sin(t)]
    expected = Path(star).contains_points(xy)
    assert 0.2 < expected.mean() < 0.8
    np.testing.assert_array_equal(in_lasso(xy, star), expected)
    np.testing.assert_array_equal(in_lasso(xy, star, DensityGrid.of(xy, bins=64)), expected)
    tiny = star * 0.02  # smaller than one bin of the grid: decided point by point
    np.testing.assert_array_equal(
        in_lasso(xy, tiny, DensityGrid.of(xy, bins=64)), Path(tiny).contains_points(xy)
    )
    assert not in_lasso(xy, star[:2]).any()  # two vertices enclose nothing


def test_click_takes_the_nearest_point_only_within_the_radius() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert nearest(xy, (0.9, 0.1), radius=0.2) == 1
    assert nearest(xy, (0.5, 2.0), radius=0.2) is None


def test_density_counts_every_point_once_and_the_selection_apart(rng) -> None:
    xy = rng.uniform(size=(10_000, 2))
    xy[:2] = [[0.0, 0.0], [1.0, 1.0]]  # the grid spans exactly [0, 1] on both axes
    grid = DensityGrid.of(xy, bins=16)
    assert grid.counts().sum() == 10_000
    left = xy[:, 0] < 0.5
    counts = grid.counts(left)
    assert counts.sum() == left.sum()
    assert counts[:, 8:].sum() == 0  # columns are x: the right half is empty
    np.testing.assert_allclose(np.nanmean(grid.mean(np.ones(10_000))), 1.0)


def test_highlight_paints_the_selected_labels_in_numpy_and_dask_alike() -> None:
    labels = np.array([[0, 1, 1], [2, 3, 7], [9, 9, 0]])
    ids = np.array([1, 2, 3, 7])  # 9 is not in the table
    lut = selection_lut(ids, np.array([True, False, False, True]))
    expected = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(apply_lut(labels, lut), expected)
    lazy = highlight(da.from_array(labels, chunks=2), lut)
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_rows_of_picked_labels_and_their_mean_centre() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {"index": [4, 5, 6], "centroid_y": [0.0, 10.0, 20.0], "centroid_x": [1.0, 3.0, 5.0]}
    )
    mask = rows_of_labels(table["index"].to_numpy(), [6, 4])
    assert mask.tolist() == [True, False, True]
    np.testing.assert_allclose(centre_of(table, mask, "yx"), [10.0, 3.0])
    assert centre_of(table, np.zeros(3, bool), "yx") is None


def test_crop_is_centred_and_mirrored_at_the_border() -> None:
    image = np.arange(100, dtype=float).reshape(10, 10)
    np.testing.assert_array_equal(crop_plane(image, (5, 5), 2), image[4:6, 4:6])
    corner = crop_plane(image, (0, 0), 4)
    assert corner.shape == (4, 4)
    np.testing.assert_array_equal(corner[2:, 2:], image[:2, :2])
    padded = np.pad(image, 30, mode="reflect")  # numpy's mirror: -1 -> 1
    for centre in [(0, 0), (9, 9), (0, 7), (8, 2)]:
        for size in (4, 7, 25):  # 25: wider than the image, reflected more than once
            start = [30 + c - size // 2 for c in centre]
            expected = padded[start[0] : start[0] + size, start[1] : start[1] + size]
            np.testing.assert_array_equal(crop_plane(image, centre, size), expected)
    volume = np.stack([image, image + 100])
    np.testing.assert_array_equal(crop_plane(volume, (1, 5, 5), 2), image[4:6, 4:6] + 100)


def test_empty_density_bins_are_transparent() -> None:
    pytest.importorskip("vispy")
    from cellvae.napari._scatter import density_rgba

    counts = np.array([[0, 1], [5, 0]])
    rgba = density_rgba(counts)
    np.testing.assert_array_equal(rgba[..., 3], [[0, 1], [1, 0]])
    assert not np.allclose(rgba[0, 1, :3], rgba[1, 0, :3])  # denser bins look different
    coloured = density_rgba(counts, np.array([[np.nan, 0.0], [1.0, np.nan]]), (0.0, 1.0))
    np.testing.assert_array_equal(coloured[..., 3], [[0, 1], [1, 0]])
