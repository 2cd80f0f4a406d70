"""Vendor formats through bioio: a CZI written by pylibCZIrw, ingested to OME-Zarr.

CZI stores pixel sizes in metres (``Scaling/Items/Distance/Value``); pylibCZIrw writes the
numbers it is given as they are, so 0.1 µm is written as ``0.1e-6``. ND2 and LIF have no
writer here: their bioio plugins are installed by the ``formats`` extra but untested.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cellvae.cli import main
from cellvae.errors import CellvaeError
from cellvae.io.omezarr import open_image

pyczi = pytest.importorskip("pylibCZIrw.czi")
pytest.importorskip("bioio_czi")

VOXEL_UM = {"z": 0.5, "y": 0.2, "x": 0.1}
NAMES = ["DNA", "Actin"]


def write_czi(path, data: np.ndarray, times: int = 1) -> None:
    """A CZI of ``data`` (``(T, C, Z, Y, X)`` uint16) with VOXEL_UM and NAMES."""
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for t in range(data.shape[0]):
            for c in range(data.shape[1]):
                for z in range(data.shape[2]):
                    doc.write(data=data[t, c, z][..., None], plane={"T": t, "C": c, "Z": z})
        doc.write_metadata(
            document_name="test",
            channel_names=dict(enumerate(NAMES)),
            **{f"scale_{a}": VOXEL_UM[a] * 1e-6 for a in "xyz"},
        )


@pytest.fixture
def czi(tmp_path, rng):
    data = rng.integers(0, 4000, (1, 2, 3, 40, 50), dtype=np.uint16)
    data[0, :, 1, 10:20, 10:30] = 4095  # a bright block, so the statistics are non-trivial
    path = tmp_path / "cells.czi"
    write_czi(path, data)
    return path, data


def test_czi_round_trip_keeps_shape_voxel_sizes_and_channel_names(czi, tmp_path):
    path, data = czi
    out = tmp_path / "cells.ome.zarr"
    assert main(["ingest", str(path), "-o", str(out), "--no-progress"]) == 0
    image = open_image(out)
    assert image.axes == "czyx" and image.shape == (2, 3, 40, 50)
    assert image.voxel_size == pytest.approx(VOXEL_UM)
    assert image.units == {a: "micrometer" for a in "zyx"}
    assert image.channel_names == NAMES
    np.testing.assert_array_equal(np.asarray(image.array), data[0])
    assert image.stats is not None and len(image.stats["channels"]) == 2


def test_czi_time_lapse_keeps_its_time_axis(tmp_path, rng):
    data = rng.integers(0, 255, (2, 2, 1, 16, 24), dtype=np.uint16)
    write_czi(tmp_path / "t.czi", data)
    out = tmp_path / "t.ome.zarr"
    assert main(["ingest", str(tmp_path / "t.czi"), "-o", str(out), "--no-progress"]) == 0
    image = open_image(out)
    assert image.axes == "tcyx" and image.shape == (2, 2, 16, 24)
    np.testing.assert_array_equal(np.asarray(image.array), data[:, :, 0])


def test_scene_by_index_or_name_and_a_missing_one(czi, tmp_path, capsys):
    path, data = czi
    for scene in ("0", "Image:0"):
        out = tmp_path / f"s{len(scene)}.ome.zarr"
        assert main(["ingest", str(path), "-o", str(out), "--scene", scene, "--no-progress"]) == 0
        np.testing.assert_array_equal(np.asarray(open_image(out).array), data[0])
    out = tmp_path / "bad.ome.zarr"
    assert main(["ingest", str(path), "-o", str(out), "--scene", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'3' is not a scene" in err and "0: Image:0" in err
    assert not out.exists()


def test_scenes_of_a_multi_scene_file(ome_tiff):
    """Scene choice on a file bioio reads with several scenes (a 2-series OME-TIFF)."""
    pytest.importorskip("bioio_ome_tiff")
    from cellvae.io.vendor import open_vendor

    with open_vendor(ome_tiff, scene=1) as image:
        assert len(image.scenes) == 2 and image.scene == image.scenes[1]
        assert image.axes == "yx" and image.data.shape == (32, 48)
        assert image.voxel_size["x"] == pytest.approx(0.7)
    with open_vendor(ome_tiff) as image:
        assert image.axes == "czyx" and image.data.shape == (2, 16, 64, 64)


def test_axes_option_is_refused_for_formats_that_name_their_axes(czi, tmp_path, capsys):
    path, _ = czi
    out = tmp_path / "o.ome.zarr"
    assert main(["ingest", str(path), "-o", str(out), "--axes", "CZYX", "--no-progress"]) == 2
    assert "names its own axes" in capsys.readouterr().err


def test_without_bioio_the_error_names_the_extra(czi, monkeypatch):
    from cellvae.io.vendor import open_vendor

    monkeypatch.setitem(sys.modules, "bioio", None)
    with pytest.raises(CellvaeError, match=r"needs the formats extra .*cellvae\[formats\]"):
        with open_vendor(czi[0]):
            pass


def test_rgb_samples_become_channels():
    import dask.array as da

    from cellvae.io.vendor import _squeeze

    rgb = da.zeros((1, 1, 1, 8, 9, 3))
    data, axes = _squeeze(rgb, "TCZYXS", "x.czi")
    assert axes == "cyx" and data.shape == (3, 8, 9)
    with pytest.raises(CellvaeError, match="axis 'M' of size 2"):
        _squeeze(da.zeros((2, 1, 8, 9)), "MCYX", "x.czi")
