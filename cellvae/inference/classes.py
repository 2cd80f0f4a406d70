"""Cell classes chosen by eye, as a file: one row per labelled cell, its label and its class.

The latent browser saves a selection (or several named classes) as a CSV or Parquet file of
``label`` and one or more class columns; ``cellvae embed --classes FILE`` and the browser read
it back, so cells picked in napari feed any analysis of the cells table. Cells the file does
not name get an empty class (``""``); a file naming a label the table does not have belongs
to other labels and is refused in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cellvae.errors import CellvaeError

#: the class column the browser writes unless told otherwise
CLASS_COLUMN = "class"
SUFFIXES = (".csv", ".parquet")


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise CellvaeError(f"{path}: a classes file is .csv or .parquet")


def read_classes(path: str | os.PathLike) -> pd.DataFrame:
    """A classes file as a table: ``label`` (int64) and its class columns (strings).

    ``index`` (napari's name for the label id) is accepted for ``label``. Refuses, in one
    line naming the file: other suffixes, unreadable files, no label column, no class
    column, labels that are not whole numbers, and a label listed twice.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise CellvaeError(f"{path}: no such classes file")
    try:
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable classes table ({err})") from None
    if "label" not in table and "index" in table:
        table = table.rename(columns={"index": "label"})
    if "label" not in table:
        raise CellvaeError(f"{path}: no 'label' column (the cells' label ids)")
    columns = [c for c in table.columns if c != "label"]
    if not columns:
        raise CellvaeError(f"{path}: no class column besides 'label'")
    labels = pd.to_numeric(table["label"], errors="coerce")
    if labels.isna().any() or (labels != np.round(labels)).any():
        raise CellvaeError(f"{path}: 'label' holds values that are not label ids")
    if labels.duplicated().any():
        twice = int(labels[labels.duplicated()].iloc[0])
        raise CellvaeError(f"{path}: label {twice} is listed twice")
    out = pd.DataFrame({"label": labels.astype(np.int64)})
    for column in columns:
        out[column] = table[column].fillna("").astype(str).to_numpy()
    return out


def merge_classes(
    table: pd.DataFrame, classes: pd.DataFrame, source: str, id_column: str = "label"
) -> pd.DataFrame:
    """``table`` with the class columns of ``classes`` (a copy; rows keep their order).

    ``id_column`` holds the label id in ``table`` (``label`` in an embed table, ``index`` in
    napari's ``features``). Cells ``classes`` does not name get ``""``; existing columns of
    the same names are replaced. A label of ``classes`` missing from ``table`` is refused.
    """
    ids = table[id_column].to_numpy(np.int64)
    missing = np.setdiff1d(classes["label"].to_numpy(np.int64), ids)
    if missing.size:
        shown = ", ".join(str(int(i)) for i in missing[:5])
        raise CellvaeError(
            f"{source}: {missing.size} of its {len(classes)} cells are not in the table "
            f"(labels {shown}{', ...' if missing.size > 5 else ''}): "
            "the classes belong to other labels"
        )
    out = table.copy()
    where = pd.Index(classes["label"].to_numpy(np.int64)).get_indexer(ids)
    for column in (c for c in classes.columns if c != "label"):
        values = classes[column].to_numpy(object)
        out[column] = np.where(where >= 0, values[np.clip(where, 0, None)], "").astype(str)
    return out


def write_classes(
    table: pd.DataFrame, path: str | os.PathLike, columns: list[str], id_column: str = "label"
) -> Path:
    """Write the cells of ``table`` that have a class in any of ``columns`` (atomically).

    The file holds ``label`` and ``columns``; the format follows the suffix (CSV or Parquet).
    """
    from cellvae.io.atomic import atomic_output

    path = Path(path)
    _check_suffix(path)
    absent = [c for c in columns if c not in table]
    if absent:
        raise CellvaeError(f"no class column {absent[0]!r} to save")
    named = (table[columns].astype(str) != "").any(axis=1).to_numpy()
    out = pd.DataFrame({"label": table[id_column].to_numpy(np.int64)[named]})
    for column in columns:
        out[column] = table[column].astype(str).to_numpy()[named]
    with atomic_output(path, overwrite=True) as tmp:
        if path.suffix.lower() == ".csv":
            out.to_csv(tmp, index=False)
        else:
            out.to_parquet(tmp, index=False)
    return path


def add_classes_to_table(path: str | os.PathLike, classes: pd.DataFrame, source: str) -> int:
    """Add the class columns to the ``cellvae embed`` table at ``path``, keeping its metadata.

    Returns the number of cells that got a class. The table is rewritten atomically; if the
    classes do not fit the table it is refused and removed, so that no table is left
    without the classes asked for.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cellvae.io.atomic import atomic_output, remove_path

    path = Path(path)
    arrow = pq.read_table(path)
    try:
        merged = merge_classes(arrow.to_pandas(), classes, source)
    except CellvaeError:
        remove_path(path)
        raise
    out = pa.Table.from_pandas(merged, preserve_index=False)
    kept = {k: v for k, v in (arrow.schema.metadata or {}).items() if k != b"pandas"}
    out = out.replace_schema_metadata({**(out.schema.metadata or {}), **kept})
    with atomic_output(path, overwrite=True) as tmp:
        pq.write_table(out, tmp)
    columns = [c for c in classes.columns if c != "label"]
    return int((merged[columns] != "").any(axis=1).sum())
