"""Cell tables as AnnData (``cells.h5ad``): layout, round trip, provenance, scanpy clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellvae.errors import CellvaeError
from cellvae.io.provenance import make_provenance, read_provenance, recording
from cellvae.io.tables import read_cell_table, to_anndata, write_cell_table

anndata = pytest.importorskip("anndata")


def _table(n: int = 6, dims: int = 3, with_t: bool = False, local: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"index": np.arange(1, n + 1), "label": np.arange(1, n + 1)})
    if with_t:
        table.insert(1, "t", np.arange(n) % 2)
    table["size_voxels"] = rng.integers(10, 100, n)
    table["size_physical"] = table["size_voxels"] * 0.25
    table["centroid_y"], table["centroid_x"] = rng.random(n), rng.random(n)
    for i in range(dims):
        table[f"z_mean_{i}"] = rng.normal(size=n)
    for i in range(dims):
        table[f"z_logvar_{i}"] = rng.normal(size=n)
    for k in range(local):
        table[f"local_{k}"] = rng.normal(size=n)
    table["pca_0"], table["pca_1"] = rng.normal(size=n), rng.normal(size=n)
    return table


def test_anndata_layout():
    table = _table()
    adata = to_anndata(table, {"verb": "embed"})
    means = [f"z_mean_{i}" for i in range(3)]
    np.testing.assert_allclose(adata.X, table[means].to_numpy(np.float32))
    assert adata.X.dtype == np.float32 and list(adata.var_names) == ["z_0", "z_1", "z_2"]
    assert list(adata.obs_names) == [str(i) for i in range(1, 7)]
    assert list(adata.obs.columns) == [
        "label",
        "size_voxels",
        "size_physical",
        "centroid_y",
        "centroid_x",
    ]
    np.testing.assert_allclose(adata.obsm["X_pca"], table[["pca_0", "pca_1"]])
    np.testing.assert_allclose(adata.obsm["z_logvar"], table[[f"z_logvar_{i}" for i in range(3)]])
    assert "X_umap" not in adata.obsm and adata.uns["cellvae"] == {"provenance": {"verb": "embed"}}


def test_time_lapse_cells_have_unique_names():
    adata = to_anndata(_table(with_t=True))
    assert list(adata.obs_names[:2]) == ["t0_1", "t1_2"] and adata.obs_names.is_unique


def test_local_summary_is_stored_in_obsm_not_obs():
    table = _table(local=4)
    adata = to_anndata(table)
    np.testing.assert_allclose(adata.obsm["local"], table[[f"local_{k}" for k in range(4)]])
    assert not any(c.startswith("local_") for c in adata.obs.columns)


def test_h5ad_round_trip_keeps_the_table_and_provenance(tmp_path):
    table = _table(with_t=True, local=12)
    table["umap_0"], table["umap_1"] = table["pca_1"], table["pca_0"]
    path = tmp_path / "cells.h5ad"
    record = make_provenance("embed", {"input": "https://host/img.ome.zarr"}, ["cellvae", "x"])
    with recording(record):
        write_cell_table(table, path)
    back = read_cell_table(path)
    pd.testing.assert_frame_equal(
        back[table.columns], table, check_dtype=False, check_exact=False, rtol=1e-6
    )
    assert read_provenance(path) == record


def test_parquet_stays_the_default(tmp_path):
    table = _table()
    write_cell_table(table, tmp_path / "cells.partial", kind_of=tmp_path / "cells.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cells.partial"), table)


def test_unreadable_h5ad_is_one_line(tmp_path):
    bad = tmp_path / "cells.h5ad"
    bad.write_text("not hdf5")
    with pytest.raises(CellvaeError, match="not a readable AnnData table"):
        read_cell_table(bad)


def test_scanpy_finds_the_two_known_populations():
    """Two populations 8 units apart in a 4-D latent space: neighbours + Leiden on the
    written AnnData put every cell in its own population's cluster."""
    sc = pytest.importorskip("scanpy")
    pytest.importorskip("leidenalg")
    rng = np.random.default_rng(3)
    truth = np.repeat([0, 1], 30)
    table = _table(n=60, dims=4)
    for i in range(4):
        table[f"z_mean_{i}"] = rng.normal(size=60) + 8.0 * truth * (i == 0)
    adata = to_anndata(table)
    # gauss/sklearn: the same graph idea without numba's minute of compiling umap's kernels
    sc.pp.neighbors(adata, n_neighbors=10, use_rep="X", method="gauss", transformer="sklearn")
    sc.tl.leiden(adata, resolution=0.2, random_state=0, flavor="igraph", n_iterations=2)
    clusters = adata.obs["leiden"].astype(int).to_numpy()
    assert len(set(clusters)) == 2
    assert all(len(set(clusters[truth == k])) == 1 for k in (0, 1))
