"""``cellvae embed --classes FILE``: classes picked in napari become columns of the table."""

import json

import pandas as pd
import pyarrow.parquet as pq

from cellvae.cli import main
from tests.inference.helpers import save_checkpoint, two_cells, write_test_image


def _embed(tmp_path, rng, *extra):
    labels, image = two_cells(rng)
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    img = write_test_image(tmp_path / "i.zarr", image, "yx")
    lab = write_test_image(tmp_path / "l.zarr", labels, "yx")
    out = tmp_path / "cells.parquet"
    argv = ["embed", str(img), "--ckpt", str(ckpt), "--labels", str(lab), "-o", str(out)]
    return out, main([*argv, "--no-progress", *extra])


def test_classes_file_adds_its_column_and_keeps_provenance(tmp_path, rng, capsys):
    pd.DataFrame({"label": [9], "class": ["mitotic"]}).to_csv(tmp_path / "c.csv", index=False)
    out, code = _embed(tmp_path, rng, "--classes", str(tmp_path / "c.csv"))
    assert code == 0
    table = pd.read_parquet(out)
    assert table.set_index("label")["class"].to_dict() == {3: "", 9: "mitotic"}
    provenance = json.loads(pq.read_schema(out).metadata[b"cellvae"])["provenance"]
    assert provenance["verb"] == "embed"
    assert "classes of 1 cells from" in capsys.readouterr().out


def test_classes_of_other_labels_are_refused_and_nothing_is_left(tmp_path, rng, capsys):
    pd.DataFrame({"label": [9, 50], "class": ["a", "b"]}).to_csv(tmp_path / "c.csv", index=False)
    out, code = _embed(tmp_path, rng, "--classes", str(tmp_path / "c.csv"))
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert "1 of its 2 cells are not in the table (labels 50)" in err
    assert not out.exists()


def test_a_bad_classes_file_is_refused_before_embedding(tmp_path, rng, capsys):
    (tmp_path / "c.csv").write_text("cell,class\n1,a\n")
    out, code = _embed(tmp_path, rng, "--classes", str(tmp_path / "c.csv"))
    assert code != 0 and "no 'label' column" in capsys.readouterr().err
    assert not out.exists()
