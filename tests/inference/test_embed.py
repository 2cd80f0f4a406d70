"""Per-cell embeddings: known geometry, centred crops, one row per cell."""

import numpy as np
import pandas as pd
import pytest
import torch

from cellvae.errors import CellvaeError
from cellvae.inference.crops import crop_centered
from cellvae.inference.embed import embed_file, measure_cells
from tests.inference.helpers import IdentityVAE, stand_in, write_test_image


def three_cells():
    """64×64 labels with cells 1, 2, 7 and an image where each cell has its own brightness."""
    labels = np.zeros((64, 64), np.uint16)
    labels[10:14, 20:24] = 1  # 4×4, centroid (11.5, 21.5)
    labels[40:43, 40:46] = 2  # 3×6, centroid (41, 42.5)
    labels[0:2, 60:64] = 7  # 2×4 at the corner, centroid (0.5, 61.5)
    image = np.zeros((64, 64), np.uint8)
    image[labels == 1], image[labels == 2], image[labels == 7] = 255, 200, 100
    return labels, image


def test_measure_cells_gives_known_geometry():
    labels, _ = three_cells()
    table = measure_cells(labels, "yx").set_index("label")
    assert list(table.index) == [1, 2, 7]
    assert list(table["size_voxels"]) == [16, 18, 8]
    np.testing.assert_allclose(table.loc[1, ["centroid_y", "centroid_x"]], [11.5, 21.5])
    np.testing.assert_allclose(table.loc[2, ["centroid_y", "centroid_x"]], [41, 42.5])
    assert list(table.loc[2, ["bbox_y_min", "bbox_y_max", "bbox_x_min", "bbox_x_max"]]) == [
        40,
        43,
        40,
        46,
    ]


def test_measure_cells_streams_slabs(monkeypatch):
    import cellvae.inference.embed as embed

    labels, _ = three_cells()
    monkeypatch.setattr(embed, "SLAB_VOXELS", 64 * 5)  # 5 rows per slab: cells span slabs
    pd.testing.assert_frame_equal(measure_cells(labels, "yx"), _whole(labels))


def _whole(labels):
    import cellvae.inference.embed as embed

    keep, embed.SLAB_VOXELS = embed.SLAB_VOXELS, 2**30
    try:
        return measure_cells(labels, "yx")
    finally:
        embed.SLAB_VOXELS = keep


def test_crop_is_centred_and_mirrored_at_the_border():
    y, x = np.mgrid[:20, :30]
    image = (100 * y + x)[None]
    crop = crop_centered(image, (10, 15), (4, 6))
    assert crop.shape == (1, 4, 6) and crop[0, 2, 3] == 100 * 10 + 15
    edge = crop_centered(image, (0, 0), (4, 4))
    assert edge[0, 2, 2] == 0 and edge[0, 1, 1] == 0 and edge[0, 0, 0] == 100 + 1


def _embed_three_cells(tmp_path, monkeypatch, vae) -> pd.DataFrame:
    """The table ``embed_file`` writes for :func:`three_cells` with ``vae`` standing in."""
    labels, image = three_cells()
    src = write_test_image(tmp_path / "img.zarr", image, "yx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "yx")
    stand_in(monkeypatch, vae)
    out = tmp_path / "cells.parquet"
    embed_file("x.ckpt", src, lab, out, batch_size=2, progress=False)
    return pd.read_parquet(out)


def test_embed_gives_one_row_per_cell_with_centred_crops(tmp_path, monkeypatch):
    table = _embed_three_cells(tmp_path, monkeypatch, IdentityVAE(patch=(8, 8)))
    assert list(table["index"]) == [1, 2, 7] and list(table["label"]) == [1, 2, 7]
    np.testing.assert_allclose(table["size_physical"], table["size_voxels"] * 0.25)
    # lo = 0, hi = 255: x = 2v/255 - 1. Cell 1's 4×4 square lies wholly in its 8×8 crop.
    expected = (16 * (2 * 255 / 255 - 1) + 48 * -1) / 64
    assert table.loc[0, "z_mean_0"] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(table["z_logvar_0"], -table["z_mean_0"])
    assert {"pca_0", "pca_1"} <= set(table.columns)


def test_labels_of_another_shape_and_empty_labels_are_refused(tmp_path, monkeypatch):
    labels, image = three_cells()
    src = write_test_image(tmp_path / "img.zarr", image, "yx")
    small = write_test_image(tmp_path / "small.zarr", labels[:32], "yx")
    empty = write_test_image(tmp_path / "empty.zarr", np.zeros_like(labels), "yx")
    stand_in(monkeypatch, IdentityVAE(patch=(8, 8)))
    out = tmp_path / "cells.parquet"
    with pytest.raises(CellvaeError, match="differs from the image"):
        embed_file("x.ckpt", src, small, out, progress=False)
    with pytest.raises(CellvaeError, match="empty"):
        embed_file("x.ckpt", src, empty, out, progress=False)
    assert not out.exists()


class _LocalVAE(IdentityVAE):
    """Stand-in whose global code is the same for every cell and whose local summary is the
    crop's brightest value and its share of non-background voxels."""

    def embed(self, x):
        mean = torch.zeros(x.shape[0], 2)
        return mean, mean

    def local_summary(self, x):
        flat = x.flatten(1)
        return torch.stack([flat.max(1).values, (flat > -0.99).float().mean(1)], 1)


def test_local_summary_columns_join_the_description_the_maps_are_made_from(tmp_path, monkeypatch):
    from cellvae.inference.embed import cell_features

    table = _embed_three_cells(tmp_path, monkeypatch, _LocalVAE(patch=(8, 8)))
    # x = 2v/255 - 1: cells 1, 2, 7 have v = 255, 200, 100; 16, 18 and 8 voxels in 8×8 crops
    np.testing.assert_allclose(table["local_0"], [1.0, 2 * 200 / 255 - 1, 2 * 100 / 255 - 1])
    np.testing.assert_allclose(table["local_1"], [16 / 64, 18 / 64, 8 / 64])
    # the global codes are all equal: only the local summary can spread the cells on the map
    assert table["pca_0"].abs().max() > 0.5
    features = cell_features(table)
    assert features.shape == (3, 4)
    np.testing.assert_allclose(features[:, 2:].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(features[:, 2:].std(0), 1)
    np.testing.assert_allclose(features[:, :2], 0)


def test_cell_features_refuses_a_table_without_codes():
    from cellvae.inference.embed import cell_features

    with pytest.raises(CellvaeError, match="z_mean"):
        cell_features(pd.DataFrame({"label": [1, 2]}))
