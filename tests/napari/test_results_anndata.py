"""A results folder whose cell table is AnnData (``cells.h5ad``) loads like ``cells.parquet``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellvae.io.provenance import read_provenance, recording
from cellvae.io.tables import write_cell_table
from cellvae.napari.results import results_layers
from tests.napari.helpers import write_results

pytest.importorskip("anndata")


def test_h5ad_table_becomes_the_labels_features(tmp_path, rng):
    out = write_results(tmp_path, rng)
    table = pd.read_parquet(out / "cells.parquet")
    with recording(read_provenance(out / "cells.parquet")):
        write_cell_table(table, out / "cells.h5ad")
    (out / "cells.parquet").unlink()

    layers, problems = results_layers(out)
    assert problems == []
    cells = [layer for layer in layers if layer[1]["name"].startswith("cells")]
    assert len(cells) == 1
    data, kwargs, kind = cells[0]
    assert kind == "labels" and kwargs["metadata"]["cells_table"].endswith("cells.h5ad")
    features = kwargs["features"]
    assert sorted(features["index"]) == np.unique(np.asarray(data))[1:].tolist()
    pd.testing.assert_frame_equal(
        features[table.columns], table, check_dtype=False, check_exact=False, rtol=1e-6
    )
