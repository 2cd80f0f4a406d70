"""``cellvae ingest``: exit codes and one-line errors for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellvae.cli import main


def _tiff(path: Path, data: np.ndarray, axes: str = "ZYX") -> Path:
    import tifffile

    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": axes})
    return path


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated(path: Path) -> Path:
    _tiff(path, np.ones((8, 32, 32), np.uint16))
    path.write_bytes(path.read_bytes()[:3000])
    return path


BAD_INPUTS = {
    "missing": (lambda p: p, [], "no such file"),
    "empty": (lambda p: _write(p, b""), [], "file is empty"),
    "truncated": (_truncated, [], "truncated"),
    "text": (lambda p: _write(p, b"hello\n"), [], "not a readable TIFF"),
    "bool": (lambda p: _tiff(p, np.zeros((4, 8, 8), bool)), [], "unsupported data type bool"),
    "complex": (
        lambda p: _tiff(p, np.ones((4, 8, 8), np.complex64)),
        [],
        "unsupported data type complex64",
    ),
    "all_nan": (
        lambda p: _tiff(p, np.full((4, 8, 8), np.nan, np.float32)),
        [],
        "no finite values",
    ),
    "constant": (lambda p: _tiff(p, np.full((4, 8, 8), 3, np.uint16)), [], "image is constant"),
    "axes": (
        lambda p: _tiff(p, np.arange(256, dtype=np.uint8).reshape(4, 8, 8)),
        ["--axes", "TZYX"],
        "4 letters but the data has 3",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_nonzero_exit_and_no_output(tmp_path, capsys, case):
    make, extra, message = BAD_INPUTS[case]
    src = make(tmp_path / "in.tif")
    out = tmp_path / "out.zarr"
    code = main(["ingest", str(src), "-o", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "in.tif" in err and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.tif"] if case != "missing" else [])


def test_existing_output_is_refused_without_overwrite(tmp_path, capsys):
    src = _tiff(tmp_path / "in.tif", np.arange(512, dtype=np.uint16).reshape(2, 16, 16))
    out = tmp_path / "out.zarr"
    assert main(["ingest", str(src), "-o", str(out), "--no-progress"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["ingest", str(src), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out.zarr: output exists" in err
    assert (
        main(["ingest", str(src), "-o", str(out), "--overwrite", "--voxel-size", "3", "1", "1"])
        == 0
    )


def test_cli_sets_voxel_size_and_chunks(tmp_path):
    from cellvae.io.omezarr import open_image

    src = _tiff(tmp_path / "in.tif", np.arange(4096, dtype=np.uint16).reshape(4, 32, 32))
    out = tmp_path / "out.zarr"
    argv = ["ingest", str(src), "-o", str(out), "--voxel-size", "2", "0.5", "0.5"]
    assert main([*argv, "--chunks", "2", "16", "16", "--no-progress"]) == 0
    image = open_image(out)
    assert image.voxel_size == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert image.array.chunks == (2, 16, 16)


def test_three_voxel_sizes_on_a_2d_image_are_refused_in_one_line(tmp_path, capsys):
    src = _tiff(tmp_path / "in.tif", np.arange(1024, dtype=np.uint16).reshape(32, 32), "YX")
    out = tmp_path / "out.zarr"
    code = main(["ingest", str(src), "-o", str(out), "--voxel-size", "5", "0.6", "0.7"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.endswith("in.tif has 2 spatial axes; give 2, in the order Y X")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_missing_output_folders_are_made_and_removed_again_on_failure(tmp_path):
    """The presets read data/generated/NAME.ome.zarr: ingest makes data/generated/ as needed."""
    src = _tiff(tmp_path / "in.tif", np.arange(1024, dtype=np.uint16).reshape(32, 32), "YX")
    assert main(["ingest", str(tmp_path / "none.tif"), "-o", str(tmp_path / "a/b/o.zarr")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
    assert main(["ingest", str(src), "-o", str(tmp_path / "a/b/o.zarr"), "--no-progress"]) == 0
    assert (tmp_path / "a" / "b" / "o.zarr" / "zarr.json").is_file()
