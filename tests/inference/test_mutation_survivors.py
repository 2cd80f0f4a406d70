"""Known answers for what a sampled mutation run of ``cellvae.inference`` found untested:
time-lapse embedding, the error messages' names, the plane-by-plane warning's threshold and
the device of a module without buffers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from cellvae.errors import CellvaeError
from cellvae.inference.embed import embed_file
from cellvae.inference.model import device_of, warn_planewise
from cellvae.inference.reconstruct import reconstruct_image
from tests.inference.helpers import IdentityVAE, stand_in, write_test_image


def _time_lapse(tmp_path):
    """Two time points: frame 0 has cells 1 and 2 (value 200), frame 1 only cell 3 (40).

    The stored percentiles of the whole time-lapse are 0 and 200, so a cell of value v maps
    to ``2 v / 200 - 1``: 1.0 in frame 0 and -0.6 in frame 1.
    """
    labels = np.zeros((2, 32, 32), np.uint16)
    labels[0, 4:8, 4:8], labels[0, 20:24, 20:24], labels[1, 10:14, 10:14] = 1, 2, 3
    image = np.zeros((2, 32, 32), np.uint8)
    image[0][labels[0] > 0], image[1][labels[1] > 0] = 200, 40
    src = write_test_image(tmp_path / "img.zarr", image, "tyx")
    lab = write_test_image(tmp_path / "lab.zarr", labels, "tyx")
    return src, lab


def test_time_lapse_embeds_each_frame_with_its_own_labels(tmp_path, monkeypatch):
    src, lab = _time_lapse(tmp_path)
    stand_in(monkeypatch, IdentityVAE(patch=(4, 4)))
    table = embed_file("x.ckpt", src, lab, tmp_path / "all.parquet", progress=False, t="all")
    assert list(table["t"]) == [0, 0, 1] and list(table["label"]) == [1, 2, 3]
    # the 4x4 crop around each cell is the cell itself
    np.testing.assert_allclose(table["z_mean_0"], [1.0, 1.0, -0.6], atol=1e-6)
    one = embed_file("x.ckpt", src, lab, tmp_path / "t1.parquet", progress=False, t=1)
    assert list(one["t"]) == [1] and list(one["label"]) == [3]
    assert pd.read_parquet(tmp_path / "t1.parquet")["z_mean_0"].item() == pytest.approx(
        -0.6, abs=1e-6
    )


def test_empty_labels_are_named_in_the_message(tmp_path, monkeypatch):
    src = write_test_image(tmp_path / "img.zarr", np.full((32, 32), 9, np.uint8), "yx")
    empty = write_test_image(tmp_path / "none.zarr", np.zeros((32, 32), np.uint16), "yx")
    stand_in(monkeypatch, IdentityVAE(patch=(4, 4)))
    with pytest.raises(CellvaeError, match=re.escape(f"{empty}: the label image is empty")):
        embed_file("x.ckpt", src, empty, tmp_path / "c.parquet", progress=False)


def test_a_bad_mode_is_named_as_the_option(tmp_path):
    with pytest.raises(CellvaeError, match=r"^--mode"):
        reconstruct_image("x.ckpt", tmp_path / "in.zarr", tmp_path / "out.zarr", mode="median")


@pytest.mark.parametrize(("planes", "warns"), [(1, False), (2, True), (3, True)])
def test_a_2d_model_warns_from_two_planes_on(planes, warns):
    with pytest.warns(UserWarning, match=f"{planes} planes") if warns else _no_warning():
        assert warn_planewise(2, "zyx", (planes, 8, 8), "img") is warns


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_device_of_a_module_with_parameters_and_no_buffers():
    assert device_of(torch.nn.Linear(2, 2, device="meta")) == torch.device("meta")
    assert device_of(torch.nn.Identity()) == torch.device("cpu")


def test_the_progress_bar_names_its_step(image2d, ckpt2d, tmp_path, capsys):
    reconstruct_image(ckpt2d, image2d, tmp_path / "r.zarr", progress=True)
    assert re.search(r"(^|\r)reconstruct: +100%", capsys.readouterr().err)
