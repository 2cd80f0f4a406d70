"""Provenance: which command, inputs and cellvae version made an output.

Every output of a ``cellvae`` verb records one dict::

    {"verb": "reconstruct", "cellvae_version": "0.1.0", "created": "2026-...Z",
     "command": ["cellvae", "reconstruct", ...], "inputs": {"input": "/abs/img.zarr", ...}}

where it is stored depends on the format: OME-Zarr ``group.attrs["cellvae"]["provenance"]``
(beside the intensity ``stats``), Parquet schema metadata ``b"cellvae"`` = JSON
``{"provenance": ...}``, JSON files a top-level ``"provenance"`` key, TIFF stacks the
``cellvae`` entry of tifffile's JSON image description (``{"provenance": ...}``), AnnData
tables ``uns["cellvae"]["provenance"]``. The
``cellvae`` command sets the current record for the verb it runs (:func:`recording`), and the
writers in :mod:`cellvae.io` attach it, so a verb's outputs carry it without each writer
being told. :func:`read_provenance` reads any
of them back (the report uses it to find a run's outputs whatever their names).
``inputs["ckpt"]`` is the model an output's values come from: ``embed --finetune`` records the
fine-tuned model it saved beside its table there, and the checkpoint given as
``inputs["finetuned_from"]`` (:mod:`cellvae.inference.finetuned`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KEY = "cellvae"
#: input roles of each verb -> the attribute of the verb's parsed arguments that holds them
ROLES: dict[str, dict[str, str]] = {
    "ingest": {"input": "input"},
    "reconstruct": {"input": "input", "ckpt": "ckpt"},
    "embed": {"input": "input", "labels": "labels", "ckpt": "ckpt"},
    "blur": {"original": "original", "reconstruction": "recon"},
    "sample": {"ckpt": "ckpt"},
    "export": {"ckpt": "ckpt", "image": "image"},
}

_CURRENT: ContextVar[dict | None] = ContextVar("cellvae_provenance", default=None)


def make_provenance(
    verb: str, inputs: Mapping[str, str | os.PathLike], command: Sequence[str] | None = None
) -> dict[str, Any]:
    """The provenance dict of ``verb`` run as ``command`` on ``inputs`` (role -> path)."""
    from cellvae import __version__

    return {
        "verb": verb,
        "cellvae_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": [str(a) for a in (command or [])],
        "inputs": {role: _absolute(p) for role, p in inputs.items() if p is not None},
    }


def _absolute(location: str | os.PathLike) -> str:
    """A local path made absolute; a URL (``https://``, ``s3://``) kept as it is."""
    from cellvae.io.remote import is_url

    return str(location) if is_url(location) else os.path.abspath(location)


def current_provenance() -> dict[str, Any] | None:
    """The record of the verb now running (inside :func:`recording`), else None."""
    return _CURRENT.get()


@contextmanager
def recording(provenance: dict[str, Any] | None) -> Iterator[dict[str, Any] | None]:
    """Make ``provenance`` the record that writers attach to outputs while inside."""
    token = _CURRENT.set(provenance)
    try:
        yield provenance
    finally:
        _CURRENT.reset(token)


def for_command(verb: str, args: object, argv: Sequence[str]) -> dict[str, Any]:
    """The record of ``cellvae VERB ARGV``, inputs taken from the parsed ``args`` by role."""
    roles = ROLES.get(verb, {})
    inputs = {role: getattr(args, attr, None) for role, attr in roles.items()}
    return make_provenance(verb, inputs, ["cellvae", *argv])


def write_zarr_provenance(path: str | os.PathLike, provenance: dict | None = None) -> None:
    """Merge ``provenance`` (default: the current record) into an OME-Zarr group's attributes."""
    import zarr

    provenance = provenance or current_provenance()
    if provenance is None:
        return
    group = zarr.open_group(str(path), mode="r+")
    entry = dict(group.attrs.get(KEY, {}))
    group.attrs[KEY] = {**entry, "provenance": provenance}


def parquet_metadata(provenance: dict | None = None) -> dict[bytes, bytes]:
    """Parquet schema metadata holding ``provenance`` (default: the current record)."""
    provenance = provenance or current_provenance()
    if provenance is None:
        return {}
    return {KEY.encode(): json.dumps({"provenance": provenance}).encode()}


def write_parquet(table, path: str | os.PathLike, provenance: dict | None = None) -> None:
    """Write a pandas ``table`` (no index) with provenance in its schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {}) | parquet_metadata(provenance)
    pq.write_table(arrow.replace_schema_metadata(meta), path)


def tiff_metadata(provenance: dict | None = None) -> dict[str, Any]:
    """Entries for tifffile's ``metadata=`` (its JSON description) holding ``provenance``."""
    provenance = provenance or current_provenance()
    return {} if provenance is None else {KEY: {"provenance": provenance}}


def read_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance stored in an output (OME-Zarr, Parquet, AnnData, JSON or TIFF), else None."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            import zarr

            entry = dict(zarr.open_group(str(path), mode="r").attrs).get(KEY, {})
            return entry.get("provenance") if isinstance(entry, dict) else None
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            raw = (pq.read_schema(path).metadata or {}).get(KEY.encode())
            return json.loads(raw)["provenance"] if raw else None
        if suffix == ".json":
            return json.loads(path.read_text()).get("provenance")
        if suffix == ".h5ad":
            from cellvae.io.tables import read_table_provenance

            return read_table_provenance(path)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shaped = tif.shaped_metadata or ({},)
            entry = shaped[0].get(KEY) if shaped else None
            return entry.get("provenance") if isinstance(entry, dict) else None
    except Exception:  # not ours, or not readable: no provenance to report
        return None
    return None
