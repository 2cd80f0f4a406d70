"""Cell-centred embedding: each crop shows its cell alone (neighbours, unlabelled objects and
the cell's own mirror image masked), unless asked to keep them; single-frame labels are not
silently applied to a whole time-lapse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellvae.errors import CellvaeError
from cellvae.inference.crops import cell_crops, inside_image, isolate_cell
from cellvae.inference.embed import embed_file, measure_cells
from tests.inference.helpers import IdentityVAE, stand_in, write_test_image


def _field():
    """A 40×40 field: cell 1 (value 200) at the centre-left, cell 2 (150) beside it, an
    unlabelled object (250) and a background of 10."""
    image = np.full((40, 40), 10.0, np.float32)
    labels = np.zeros((40, 40), np.uint16)
    labels[16:22, 10:16], image[16:22, 10:16] = 1, 200
    labels[16:22, 19:25], image[16:22, 19:25] = 2, 150
    image[5:8, 5:8] = 250  # an object nobody labelled
    return image, labels


def test_a_masked_crop_shows_its_cell_alone_on_the_background_level():
    image, labels = _field()
    table = measure_cells(labels, "yx").set_index("label", drop=False)
    masked = cell_crops(image[None], labels, table.loc[[1]], "yx", (24, 28), "masked")[0, 0]
    kept = cell_crops(image[None], labels, table.loc[[1]], "yx", (24, 28), "kept")[0, 0]
    assert kept.max() == 250 and (kept == 150).sum() == 36  # the neighbour and the object
    assert set(np.unique(masked)) == {10.0, 200.0}  # the cell, and background elsewhere
    assert (masked == 200).sum() == 36  # the whole cell is kept


def test_the_mirrored_copy_of_a_cell_at_the_border_is_masked():
    image = np.full((20, 20), 5.0, np.float32)
    labels = np.zeros((20, 20), np.uint16)
    labels[0:3, 8:12], image[0:3, 8:12] = 4, 90  # touching the top edge
    table = measure_cells(labels, "yx")
    kept = cell_crops(image[None], labels, table, "yx", (16, 16), "kept")[0, 0]
    masked = cell_crops(image[None], labels, table, "yx", (16, 16), "masked")[0, 0]
    assert (kept == 90).sum() == 2 * 12  # the mirror padding doubles the cell
    assert (masked == 90).sum() == 12  # only the cell itself
    assert (masked[:7] == 5).all()  # rows above the image (mirrored) are background


def test_isolation_keeps_a_rim_around_the_cell_and_leaves_a_cell_without_voxels():
    crop = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    own = np.zeros((10, 10), bool)
    own[5, 5] = True
    out = isolate_cell(crop, own)
    rim = np.abs(np.arange(10)[:, None] - 5) + np.abs(np.arange(10)[None] - 5) <= 2
    np.testing.assert_array_equal(out[0][rim], crop[0][rim])  # grown by 2 (city block)
    assert np.unique(out[0][~rim]).size == 1
    assert isolate_cell(crop, np.zeros((10, 10), bool)) is crop


def test_inside_image_marks_the_mirrored_part_of_a_crop():
    inside = inside_image((1, 18), (4, 6), (20, 20))
    expected = np.zeros((4, 6), bool)
    expected[1:, :5] = True  # rows -1 and columns 20 are outside
    np.testing.assert_array_equal(inside, expected)


def test_embed_masks_by_default_and_records_it(tmp_path, monkeypatch):
    image, labels = _field()
    src = write_test_image(tmp_path / "img.zarr", image.astype(np.uint8), "yx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "yx")
    stand_in(monkeypatch, IdentityVAE(patch=(24, 24)))
    masked = embed_file("x.ckpt", src, lab, tmp_path / "m.parquet", progress=False)
    kept = embed_file("x.ckpt", src, lab, tmp_path / "k.parquet", progress=False, neighbours="kept")
    assert list(masked["neighbours"]) == ["masked"] * 2
    assert list(pd.read_parquet(tmp_path / "k.parquet")["neighbours"]) == ["kept"] * 2
    # the stand-in's code is the crop's mean: the masked crop lost the neighbour's brightness
    assert (masked["z_mean_0"] < kept["z_mean_0"]).all()
    with pytest.raises(CellvaeError, match="neighbours"):
        embed_file("x.ckpt", src, lab, tmp_path / "b.parquet", progress=False, neighbours="x")


def _moving_cells(tmp_path):
    """A 3-frame time-lapse whose cell moves, and labels of frame 0 only (no t axis)."""
    image = np.zeros((3, 32, 32), np.uint8)
    for t in range(3):
        image[t, 4:8, 4 + 8 * t : 8 + 8 * t] = 200
    labels = np.zeros((32, 32), np.uint16)
    labels[4:8, 4:8] = 1
    src = write_test_image(tmp_path / "img.zarr", image, "tyx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "yx")
    return src, lab


def test_single_frame_labels_are_refused_for_a_whole_time_lapse(tmp_path, monkeypatch):
    src, lab = _moving_cells(tmp_path)
    stand_in(monkeypatch, IdentityVAE(patch=(8, 8)))
    out = tmp_path / "all.parquet"
    with pytest.raises(CellvaeError, match=r"labels of one frame for 3 time points.*static"):
        embed_file("x.ckpt", src, lab, out, progress=False, t="all")
    assert not out.exists()
    with pytest.warns(UserWarning, match="same labels are applied to all 3 time points"):
        table = embed_file("x.ckpt", src, lab, out, progress=False, t="all", labels_static=True)
    assert list(table["t"]) == [0, 1, 2]
    one = embed_file("x.ckpt", src, lab, tmp_path / "t2.parquet", progress=False, t=2)
    assert list(one["t"]) == [2]  # one chosen frame: the user said which


def test_embed_can_fine_tune_on_the_cells_first_and_records_it(tmp_path):
    from tests.inference.helpers import save_checkpoint

    image, labels = _field()
    src = write_test_image(tmp_path / "img.zarr", image.astype(np.uint8), "yx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "yx")
    ckpt = save_checkpoint(
        tmp_path / "m.ckpt", arch="hierarchical", likelihood="dlogistic", widths=(4, 8),
        latent_channels=2, global_dim=3, groups_per_scale=[1, 0], patch_size=16,
    )  # fmt: skip
    plain = embed_file(ckpt, src, lab, tmp_path / "a.parquet", progress=False)
    tuned = embed_file(ckpt, src, lab, tmp_path / "b.parquet", progress=False, finetune_steps=5)
    assert list(plain["finetune_steps"]) == [0, 0] and list(tuned["finetune_steps"]) == [5, 5]
    codes = [t[[f"z_mean_{i}" for i in range(3)]].to_numpy() for t in (plain, tuned)]
    assert not np.allclose(*codes)  # the model changed before embedding
    again = embed_file(ckpt, src, lab, tmp_path / "c.parquet", progress=False, finetune_steps=5)
    pd.testing.assert_frame_equal(again, tuned)  # seeded: the same fine-tuning every time
