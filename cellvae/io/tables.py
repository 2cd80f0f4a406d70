"""Cell tables on disk: Parquet (the default) or AnnData ``.h5ad`` for scverse tools.

``cellvae embed`` makes one row per cell: ``index`` (= the label id, how napari matches
features to labels), ``label``, optional ``t``, size, centroid, bounding box, the posterior
``z_mean_i``/``z_logvar_i``, the local latents' summary ``local_k`` and the 2D maps
``pca_0/1`` (``umap_0/1``). As AnnData (``-o cells.h5ad``, the ``anndata`` extra) the same
table is::

    X                 latent means, (cells, D) float32; var_names "z_0" .. "z_{D-1}"
    obs               the per-cell columns (label, t, size, centroid, bbox, ...)
    obs_names         the label id ("t<T>_<label>" for time-lapses)
    obsm["X_pca"]     pca_0/1;  obsm["X_umap"] umap_0/1 when present
    obsm["z_logvar"]  the posterior log-variances, (cells, D)
    obsm["local"]     the local latents' summary local_0 .. local_{K-1}, when present
    uns["cellvae"]    {"provenance": ...} (:mod:`cellvae.io.provenance`)

:func:`read_cell_table` reads either back into the Parquet layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cellvae.errors import CellvaeError

H5AD = ".h5ad"
_LATENT = ("z_mean_", "z_logvar_")
_LOCAL = "local_"
_MAPS = {"pca": "X_pca", "umap": "X_umap"}


def is_anndata(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an AnnData file (``.h5ad``); anything else is Parquet."""
    return Path(path).suffix.lower() == H5AD


def check_table_output(path: str | os.PathLike) -> None:
    """Refuse (one line, before any work) an ``.h5ad`` output without ``anndata`` installed."""
    if not is_anndata(path):
        return
    try:
        import anndata  # noqa: F401
    except ImportError:
        raise CellvaeError(
            f"{path}: writing AnnData needs the anndata extra: pip install 'cellvae[anndata]'"
        ) from None


def numbered_columns(table: pd.DataFrame, prefix: str) -> list[str]:
    """``prefix0, prefix1, ...`` columns of ``table`` in numeric order."""
    found = [c for c in table if c.startswith(prefix) and c[len(prefix) :].isdigit()]
    return sorted(found, key=lambda c: int(c[len(prefix) :]))


def to_anndata(table: pd.DataFrame, provenance: dict | None = None):
    """An :class:`anndata.AnnData` of an embed table (layout in the module docstring)."""
    import anndata

    means, logvars = numbered_columns(table, _LATENT[0]), numbered_columns(table, _LATENT[1])
    if not means:
        raise CellvaeError("cell table: no z_mean_* columns to store as X")
    maps = {key: numbered_columns(table, f"{name}_") for name, key in _MAPS.items()}
    local = numbered_columns(table, _LOCAL)
    used = set(means) | set(logvars) | set(local) | {"index"}
    used |= {c for cols in maps.values() for c in cols}
    obs = table[[c for c in table if c not in used]].copy()
    labels = table["label"].astype(np.int64).astype(str)
    obs.index = ("t" + table["t"].astype(str) + "_" + labels) if "t" in table else labels
    obs.index.name = None
    adata = anndata.AnnData(
        X=table[means].to_numpy(np.float32),
        obs=obs,
        var=pd.DataFrame(index=[f"z_{i}" for i in range(len(means))]),
    )
    for key, cols in maps.items():
        if cols:
            adata.obsm[key] = table[cols].to_numpy(np.float64)
    if logvars:
        adata.obsm["z_logvar"] = table[logvars].to_numpy(np.float32)
    if local:
        adata.obsm["local"] = table[local].to_numpy(np.float32)
    adata.uns["cellvae"] = {"provenance": provenance} if provenance else {}
    return adata


def write_anndata(table: pd.DataFrame, path: str | os.PathLike, provenance=None) -> None:
    """Write ``table`` as AnnData to ``path`` with the running verb's provenance."""
    from cellvae.io.provenance import current_provenance

    to_anndata(table, provenance or current_provenance()).write_h5ad(Path(path))


def write_cell_table(table: pd.DataFrame, path: str | os.PathLike, kind_of=None) -> None:
    """Write ``table`` to ``path`` as AnnData if ``kind_of`` (default ``path``) ends in
    ``.h5ad``, else as Parquet; both carry the running verb's provenance.

    ``kind_of`` is the final name when ``path`` is a temporary one (``cells.h5ad.partial``).
    """
    from cellvae.io.provenance import write_parquet

    if is_anndata(kind_of if kind_of is not None else path):
        write_anndata(table, path)
    else:
        write_parquet(table, path)


def from_anndata(adata) -> pd.DataFrame:
    """The Parquet layout of an AnnData written by :func:`to_anndata` (any ``X`` works)."""
    obs = adata.obs.reset_index(drop=True)
    table = obs.copy()
    for column in table.columns:  # AnnData stores text columns as categories
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            table[column] = table[column].astype(object)
    if "label" in table:
        table.insert(0, "index", table["label"].to_numpy())
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    parts = [table, pd.DataFrame(x, columns=[f"z_mean_{i}" for i in range(x.shape[1])])]
    if "z_logvar" in adata.obsm:
        lv = np.asarray(adata.obsm["z_logvar"])
        parts.append(pd.DataFrame(lv, columns=[f"z_logvar_{i}" for i in range(lv.shape[1])]))
    if "local" in adata.obsm:
        lc = np.asarray(adata.obsm["local"])
        parts.append(pd.DataFrame(lc, columns=[f"{_LOCAL}{k}" for k in range(lc.shape[1])]))
    for name, key in _MAPS.items():
        if key in adata.obsm:
            m = np.asarray(adata.obsm[key])[:, :2]
            parts.append(pd.DataFrame(m, columns=[f"{name}_{i}" for i in range(m.shape[1])]))
    return pd.concat(parts, axis=1)


def read_cell_table(path: str | os.PathLike) -> pd.DataFrame:
    """A cell table (``.parquet`` or ``.h5ad``) as a DataFrame with an ``index`` column
    (the label id), as napari's labels ``features`` want it. Unreadable: one line."""
    path = Path(path)
    try:
        if is_anndata(path):
            import anndata

            table = from_anndata(anndata.read_h5ad(path))
        else:
            table = pd.read_parquet(path)
    except ImportError:
        raise CellvaeError(
            f"{path}: reading AnnData needs the anndata extra: pip install 'cellvae[anndata]'"
        ) from None
    except Exception as err:
        kind = "AnnData" if is_anndata(path) else "parquet"
        raise CellvaeError(f"{path}: not a readable {kind} table ({err})") from None
    if "index" not in table:
        if "label" not in table:
            raise CellvaeError(f"{path}: not a cellvae embed table (no index / label column)")
        table.insert(0, "index", table["label"])
    return table.reset_index(drop=True)


def read_table_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance stored in an ``.h5ad`` table (``uns["cellvae"]``), else None.

    Reads only that element (``anndata.io.read_elem``), not the table.
    """
    try:
        import h5py
        from anndata.io import read_elem

        with h5py.File(path, "r") as f:
            entry = read_elem(f["uns/cellvae"]) if "uns/cellvae" in f else {}
    except (ImportError, OSError, KeyError, ValueError):
        return None
    provenance = entry.get("provenance") if isinstance(entry, dict) else None
    return _plain(provenance) if provenance else None


def _plain(value):
    """numpy arrays and scalars (as anndata reads lists back) as lists and Python scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value
