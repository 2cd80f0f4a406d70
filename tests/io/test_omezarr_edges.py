"""OME-Zarr writing edges: metadata names, leftovers, inherited channel names, messages."""

from __future__ import annotations

import os
from argparse import Namespace

import dask.array as da
import numpy as np
import pytest
import zarr

from cellvae.errors import CellvaeError, ConfigError
from cellvae.io.atomic import temporary_path
from cellvae.io.ingest import ingest
from cellvae.io.omezarr import create_image, finalize_image, open_image, write_image
from cellvae.io.provenance import for_command, make_provenance, recording
from cellvae.io.stats import check_stats, intensity_stats


def test_multiscales_name_is_the_final_name_without_partial(tmp_path):
    path = write_image(tmp_path / "cells.zarr", np.ones((8, 8), np.uint8), "yx")
    ms = dict(zarr.open_group(str(path), mode="r").attrs)["ome"]["multiscales"][0]
    assert ms["name"] == "cells.zarr"


def test_a_new_image_discards_a_leftover_unless_resumed(tmp_path):
    final = tmp_path / "out.zarr"
    arr = create_image(final, (4, 4), np.uint8, "yx")
    arr[:] = 9
    arr = create_image(final, (4, 4), np.uint8, "yx")
    assert arr[:].max() == 0  # the leftover was thrown away
    arr[:] = 3
    finalize_image(temporary_path(final), final)
    np.testing.assert_array_equal(open_image(final).array[:], 3)


def test_an_image_made_from_an_input_inherits_its_channel_names(tmp_path):
    data = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    src = write_image(tmp_path / "src.zarr", data, "cyx", channel_names=["DAPI", "GFP"])
    with recording(make_provenance("reconstruct", {"input": src})):
        same = write_image(tmp_path / "same.zarr", data, "cyx")
        other = write_image(tmp_path / "other.zarr", data[:1], "cyx")
        flat = write_image(tmp_path / "flat.zarr", data[0], "yx")
    assert open_image(same).channel_names == ["DAPI", "GFP"]
    assert open_image(other).channel_names is None  # one channel, two names: not inherited
    assert open_image(flat).channel_names is None
    outside = write_image(tmp_path / "outside.zarr", data, "cyx")
    assert open_image(outside).channel_names is None


def test_check_stats_messages_name_the_channel_only_for_several_channels():
    two = np.zeros((2, 4, 4), np.uint8)
    two[0, 0, 0] = 1
    with pytest.raises(
        CellvaeError,
        match=r"^a\.tif: image is constant \(every voxel is 0\) \(channel 1\); "
        r"intensity normalisation is undefined$",
    ):
        check_stats(intensity_stats(da.from_array(two), "cyx"), "a.tif")
    nan = np.full((2, 4, 4), np.nan, np.float32)
    nan[1] = 1.0
    nan[1, 0, 0] = 2.0
    with pytest.raises(
        CellvaeError, match=r"^a\.tif: image has no finite values \(all NaN or inf\) \(channel 0\)$"
    ):
        check_stats(intensity_stats(da.from_array(nan), "cyx"), "a.tif")
    with pytest.raises(CellvaeError, match=r"^b: image has no finite values \(all NaN or inf\)$"):
        check_stats(intensity_stats(da.from_array(nan[0]), "yx"), "b")


def test_a_unit_without_voxel_sizes_is_refused(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^unit: give the voxel size it applies to \(--voxel-size\)$"
    ):
        ingest(tmp_path / "in.tif", tmp_path / "out.zarr", unit="nm")


def test_for_command_records_the_inputs_of_the_verb_by_role():
    args = Namespace(input="a.zarr", labels=None, ckpt="m.ckpt", other="x")
    record = for_command("embed", args, ["embed", "a.zarr"])
    assert record["verb"] == "embed"
    assert record["command"] == ["cellvae", "embed", "a.zarr"]
    assert record["inputs"] == {
        "input": os.path.abspath("a.zarr"),
        "ckpt": os.path.abspath("m.ckpt"),
    }
    assert for_command("fit", args, [])["inputs"] == {}


def test_finalize_builds_the_levels_asked_for(tmp_path):
    final = tmp_path / "out.zarr"
    arr = create_image(final, (256, 256), np.uint8, "yx")
    arr[:] = 1
    finalize_image(temporary_path(final), final, n_levels=1)
    assert open_image(final).levels == ["s0"]


def test_unsupported_dtypes_are_refused_before_writing(tmp_path):
    with pytest.raises(CellvaeError, match=r"^image: unsupported data type bool"):
        write_image(tmp_path / "b.zarr", np.zeros((8, 8), bool), "yx")
    assert not (tmp_path / "b.zarr").exists()


def test_ingest_of_a_constant_image_names_the_input(tmp_path):
    import tifffile

    src = tmp_path / "flat.tif"
    tifffile.imwrite(src, np.full((16, 16), 5, np.uint8))
    with pytest.raises(CellvaeError, match=rf"^{src}: image is constant \(every voxel is 5\)"):
        ingest(src, tmp_path / "out.zarr", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.tif"]


def test_ingest_progress_bars_name_their_steps(tmp_path, capsys):
    import tifffile

    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.arange(32 * 32, dtype=np.uint16).reshape(32, 32))
    ingest(src, tmp_path / "out.zarr", progress=True)
    err = capsys.readouterr().err
    assert "ingest in.tif" in err and "statistics" in err
