"""``cellvae embed`` end to end, and its refusals."""

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main
from tests.inference.helpers import save_checkpoint, two_cells, write_test_image


@pytest.fixture
def files(tmp_path, rng):
    labels, image = two_cells(rng)
    return (
        save_checkpoint(tmp_path / "m.ckpt"),
        write_test_image(tmp_path / "i.zarr", image, "yx"),
        write_test_image(tmp_path / "l.zarr", labels, "yx"),
    )


def _refused(capsys, argv, match, out):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_embed_writes_one_row_per_cell(tmp_path, files):
    ckpt, image, labels = files
    out = tmp_path / "cells.parquet"
    assert (
        main(
            [
                "embed",
                str(image),
                "--ckpt",
                str(ckpt),
                "--labels",
                str(labels),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = pd.read_parquet(out)
    assert list(table["label"]) == [3, 9] and list(table["size_voxels"]) == [25, 60]
    assert {"z_mean_0", "z_mean_3", "z_logvar_3", "pca_0", "pca_1", "index"} <= set(table)


def test_labels_of_another_shape(tmp_path, files, capsys):
    ckpt, image, _ = files
    small = write_test_image(tmp_path / "s.zarr", np.ones((20, 48), np.uint16), "yx")
    out = tmp_path / "cells.parquet"
    _refused(
        capsys,
        ["embed", str(image), "--ckpt", str(ckpt), "--labels", str(small), "-o", str(out)],
        "differs",
        out,
    )


def test_empty_labels(tmp_path, files, capsys):
    ckpt, image, _ = files
    empty = write_test_image(tmp_path / "e.zarr", np.zeros((40, 48), np.uint16), "yx")
    out = tmp_path / "cells.parquet"
    _refused(
        capsys,
        ["embed", str(image), "--ckpt", str(ckpt), "--labels", str(empty), "-o", str(out)],
        "empty",
        out,
    )


def test_existing_output(tmp_path, files, capsys):
    ckpt, image, labels = files
    out = tmp_path / "cells.parquet"
    out.write_text("old")
    assert (
        main(["embed", str(image), "--ckpt", str(ckpt), "--labels", str(labels), "-o", str(out)])
        != 0
    )
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "old"
