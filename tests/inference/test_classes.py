"""Cell classes picked by eye: written, read back, merged into a cells table, refused when wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellvae.errors import CellvaeError
from cellvae.inference.classes import merge_classes, read_classes, write_classes


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame({"label": [3, 9, 12, 40], "z_mean_0": [0.1, 0.2, 0.3, 0.4]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_classes_round_trip_with_the_same_cells(tmp_path, table, suffix):
    table["class"] = ["round", "", "flat", "round"]
    path = write_classes(table, tmp_path / f"classes{suffix}", ["class"])
    back = read_classes(path)
    assert back["label"].tolist() == [3, 12, 40]  # the cells that have a class
    assert back["class"].tolist() == ["round", "flat", "round"]
    merged = merge_classes(table.drop(columns="class"), back, str(path))
    assert merged["class"].tolist() == ["round", "", "flat", "round"]
    assert merged["label"].tolist() == [3, 9, 12, 40]


def test_napari_features_name_the_label_index(tmp_path):
    features = pd.DataFrame({"index": [5, 6, 7], "class": ["a", "b", ""]})
    write_classes(features, tmp_path / "c.csv", ["class"], id_column="index")
    assert pd.read_csv(tmp_path / "c.csv").to_dict("list") == {"label": [5, 6], "class": ["a", "b"]}
    merged = merge_classes(
        features.drop(columns="class"), read_classes(tmp_path / "c.csv"), "c", "index"
    )
    assert merged["class"].tolist() == ["a", "b", ""]


def test_labels_not_in_the_table_are_refused(tmp_path, table):
    pd.DataFrame({"label": [3, 77, 78], "class": ["x"] * 3}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(
        CellvaeError, match=r"c.csv: 2 of its 3 cells are not in the table \(labels 77, 78\)"
    ):
        merge_classes(table, read_classes(tmp_path / "c.csv"), str(tmp_path / "c.csv"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("cell,class\n1,a\n", "no 'label' column"),
        ("label\n1\n", "no class column"),
        ("label,class\n1.5,a\n", "not label ids"),
        ("label,class\n2,a\n2,b\n", "label 2 is listed twice"),
    ],
)
def test_bad_classes_files_are_one_line(tmp_path, content, match):
    path = tmp_path / "c.csv"
    path.write_text(content)
    with pytest.raises(CellvaeError, match=match):
        read_classes(path)
    with pytest.raises(CellvaeError, match=r"is \.csv or \.parquet"):
        read_classes(tmp_path / "c.txt")
    with pytest.raises(CellvaeError, match="no such classes file"):
        read_classes(tmp_path / "none.csv")


def test_several_class_columns_and_missing_values(tmp_path):
    pd.DataFrame({"label": [1, 2], "phase": ["G1", None], "shape": ["", "long"]}).to_parquet(
        tmp_path / "c.parquet"
    )
    back = read_classes(tmp_path / "c.parquet")
    assert back.to_dict("list") == {"label": [1, 2], "phase": ["G1", ""], "shape": ["", "long"]}
    assert back["label"].dtype == np.int64
