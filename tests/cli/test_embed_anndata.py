"""``cellvae embed -o cells.h5ad`` on the demo's sample: AnnData that scanpy clusters."""

from __future__ import annotations

import numpy as np
import pytest

from cellvae.cli import main
from cellvae.io.omezarr import open_labels
from tests.inference.helpers import save_checkpoint

anndata = pytest.importorskip("anndata")


def test_embed_writes_anndata_that_scanpy_clusters(tmp_path):
    sc = pytest.importorskip("scanpy")
    pytest.importorskip("leidenalg")
    image = tmp_path / "mito2d.ome.zarr"
    assert main(["ingest", "--sample", "mitochondria_2d", "-o", str(image)]) == 0
    ckpt = save_checkpoint(tmp_path / "m.ckpt")
    out = tmp_path / "cells.h5ad"
    labels = f"{image}/labels/mitochondria"
    argv = ["embed", str(image), "--ckpt", str(ckpt), "--labels", labels, "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 0

    adata = anndata.read_h5ad(out)
    ids = np.unique(np.asarray(open_labels(labels).to_dask()))
    assert sorted(adata.obs["label"]) == ids[ids > 0].tolist()
    assert adata.n_vars == 4 and adata.obsm["X_pca"].shape == (adata.n_obs, 2)
    assert adata.uns["cellvae"]["provenance"]["verb"] == "embed"
    sc.pp.neighbors(adata, n_neighbors=10, use_rep="X", method="gauss", transformer="sklearn")
    sc.tl.leiden(adata, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2)
    assert adata.obs["leiden"].notna().all() and adata.obs["leiden"].nunique() >= 2


def test_h5ad_without_anndata_is_refused_before_work(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "anndata", None)
    out = tmp_path / "cells.h5ad"
    argv = ["embed", "img.zarr", "--ckpt", "m.ckpt", "--labels", "l.zarr", "-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'cellvae[anndata]'" in err
