"""io hardening: concurrent ingests, pictures, units, channel names, NGFF placement, provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellvae.cli import main
from cellvae.errors import CellvaeError
from cellvae.io.ingest import ingest
from cellvae.io.omezarr import open_image, write_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_ingests_of_one_output_at_once_one_wins_and_nothing_is_half_written(tmp_path):
    """Two processes ingest different files into one output at the same moment."""
    rng = np.random.default_rng(0)
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, rng.integers(0, 4000, (1536, 1536), dtype=np.uint16))
    out = tmp_path / "out.ome.zarr"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from cellvae.cli import main\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, "ingest", str(tmp_path / n), "-o", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in ("a.tif", "b.tif")
    ]
    go.touch()  # both are imported and waiting: start them together
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]

    codes = sorted(code for code, _ in results)
    assert codes[0] == 0, results
    for code, err in results:
        assert "Traceback" not in err, err
        if code:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and str(out) in lines[0], err
            assert "a.tif" not in lines[0] and "b.tif" not in lines[0]  # not the input's fault
    assert open_image(out).shape == (1536, 1536)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif", "go", out.name]


def test_png_and_jpeg_are_ingested(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (40, 50), dtype=np.uint8)
    colour = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "grey.png", grey)
    iio.imwrite(tmp_path / "colour.png", colour)
    iio.imwrite(tmp_path / "photo.jpg", colour)

    assert main(["ingest", str(tmp_path / "grey.png"), "-o", str(tmp_path / "g.zarr")]) == 0
    image = open_image(tmp_path / "g.zarr")
    assert image.axes == "yx"
    np.testing.assert_array_equal(np.asarray(image.array), grey)
    ingest(tmp_path / "colour.png", tmp_path / "c.zarr", progress=False)
    image = open_image(tmp_path / "c.zarr")
    assert image.axes == "cyx" and image.shape == (3, 40, 50)
    np.testing.assert_array_equal(np.asarray(image.array), colour.transpose(2, 0, 1))
    ingest(tmp_path / "photo.jpg", tmp_path / "j.zarr", progress=False)
    assert open_image(tmp_path / "j.zarr").shape == (3, 40, 50)


@pytest.mark.parametrize("verb", ["fit", "reconstruct", "sample"])
def test_a_tiff_given_where_ome_zarr_is_needed_names_cellvae_ingest(tmp_path, verb, capsys):
    from tests.inference.helpers import save_checkpoint

    tif = tmp_path / "cells.tif"
    tifffile.imwrite(tif, np.zeros((64, 64), np.uint8))
    ckpt = str(save_checkpoint(tmp_path / "m.ckpt"))
    argv = {
        "fit": [
            "fit",
            f"--data.paths=[{tif}]",
            "--data.patch_size=[16, 16]",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        "reconstruct": ["reconstruct", str(tif), "--ckpt", ckpt, "-o", str(tmp_path / "r.zarr")],
        "sample": ["sample", "--ckpt", ckpt, "--image", str(tif), "-o", str(tmp_path / "s.tif")],
    }[verb]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert f"cellvae ingest {tif} -o" in err, err
    assert "Traceback" not in err


def test_angstrom_and_other_units_pass_through(tmp_path):
    """Cryo-EM: an ImageJ TIFF in Å (ImageJ escapes it as \\u00C5), and --unit for sizes."""
    data = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    tif = tmp_path / "tomo.tif"
    tifffile.imwrite(
        tif,
        data,
        imagej=True,
        resolution=(1 / 3.4, 1 / 3.4),
        metadata={"unit": "\\u00C5", "spacing": 3.4, "axes": "ZYX"},
    )
    image = open_image(ingest(tif, tmp_path / "a.zarr", progress=False))
    assert image.units == {a: "angstrom" for a in "zyx"}
    np.testing.assert_allclose([image.voxel_size[a] for a in "zyx"], [3.4, 3.4, 3.4], rtol=1e-6)
    sizes = ["--voxel-size", "20", "5", "5", "--unit", "nm"]
    code = main(["ingest", str(tif), "-o", str(tmp_path / "n.zarr"), *sizes])
    assert code == 0
    image = open_image(tmp_path / "n.zarr")
    assert image.units == {a: "nanometer" for a in "zyx"}
    assert image.voxel_size == {"z": 20.0, "y": 5.0, "x": 5.0}


def test_channel_names_of_an_ome_tiff_are_kept(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    tif = tmp_path / "two.ome.tif"
    tifffile.imwrite(
        tif, data, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    )
    image = open_image(ingest(tif, tmp_path / "two.zarr", progress=False))
    assert image.channel_names == ["DAPI", "GFP"]


def test_pyramid_levels_and_translated_images_overlay_level_zero(tmp_path):
    """NGFF places a voxel's centre at index * scale + translation; a level that averages
    voxels 2j and 2j + 1 must be centred on their middle, so it needs half a voxel of shift."""
    data = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
    path = write_image(tmp_path / "p.zarr", data, "yx", voxel_size={"y": 0.5, "x": 0.5})
    level0, level1 = open_image(path, level=0), open_image(path, level=1)
    j = 10  # level-1 voxel j is the mean of level-0 voxels 2j and 2j + 1
    centre1 = j * level1.voxel_size["x"] + level1.translation["x"]
    centre0 = (2 * j + 0.5) * level0.voxel_size["x"] + level0.translation.get("x", 0.0)
    assert centre1 == pytest.approx(centre0)
    shifted = write_image(
        tmp_path / "t.zarr", data[:64, :64], "yx", translation={"y": 2.0, "x": 3.0}
    )
    assert open_image(shifted).translation == {"y": 2.0, "x": 3.0}


def test_provenance_round_trips_through_zarr_parquet_json_and_tiff(tmp_path):
    import pandas as pd

    from cellvae.io.provenance import make_provenance, read_provenance, recording, write_parquet

    record = make_provenance("embed", {"input": "img.zarr", "ckpt": "m.ckpt"}, ["cellvae", "x"])
    assert record["inputs"]["input"] == os.path.abspath("img.zarr")
    assert record["created"].endswith("Z") and record["verb"] == "embed"
    with recording(record):
        zarr_path = write_image(
            tmp_path / "i.zarr", np.ones((8, 8), np.uint8), "yx", stats={"a": 1}
        )
        write_parquet(pd.DataFrame({"label": [1, 2]}), tmp_path / "t.parquet")
    (tmp_path / "s.json").write_text(json.dumps({"provenance": record}))
    tifffile.imwrite(
        tmp_path / "s.tif", np.zeros((2, 4, 4)), metadata={"cellvae": {"provenance": record}}
    )
    for name in ("i.zarr", "t.parquet", "s.json", "s.tif"):
        assert read_provenance(tmp_path / name) == record, name
    assert open_image(zarr_path).stats == {"a": 1}  # stats and provenance live side by side
    assert pd.read_parquet(tmp_path / "t.parquet")["label"].tolist() == [1, 2]
    assert read_provenance(tmp_path / "nothing.json") is None


def test_ingest_names_the_output_when_writing_fails(tmp_path, monkeypatch):
    """A write error (disk full, permissions) blames the output, not the input file."""
    tif = tmp_path / "in.tif"
    tifffile.imwrite(tif, np.zeros((32, 32), np.uint8))
    out = tmp_path / "out.zarr"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(out) + ".partial/s0/c/0/0")

    monkeypatch.setattr("cellvae.io.ingest.store_dask", full)
    with pytest.raises(CellvaeError, match=r"out.zarr: cannot write \(No space left on device\)"):
        ingest(tif, out, progress=False)
    assert list(tmp_path.iterdir()) == [tif]
