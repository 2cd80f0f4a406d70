"""``cellvae embed --finetune N``: the model adapted to the cells, saved beside the table.

:func:`finetune_on_cells` trains the loaded model on the cells' crops
(:mod:`cellvae.training.finetune`). A table embedded after that holds the codes of the
fine-tuned model, not of the checkpoint it was given, so decoding them (napari's latent
explorer, ``cellvae sample``) needs that model. It is saved as ``<table stem>.finetuned.ckpt``
next to the table (``cells.parquet`` -> ``cells.finetuned.ckpt``), a checkpoint like
``cellvae fit``'s that :func:`cellvae.inference.model.load_model` reads: the base
checkpoint's hyper-parameters and data settings, the fine-tuned weights as ``model.*``, and a
``finetuned_from`` record (base path and SHA-256, steps, seed, image, labels, time points,
masking, number of crops). The table's provenance names it as its ``ckpt`` and the base one as
``finetuned_from``, so every reader that follows ``inputs["ckpt"]`` decodes with the right
model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError
from cellvae.inference.model import to_input

#: the key of a checkpoint's fine-tuning record (and of the base in a table's provenance)
FINETUNED_FROM = "finetuned_from"
SUFFIX = ".finetuned.ckpt"
#: at most this many cells' crops are used to fine-tune (a seeded sample of them)
FINETUNE_CELLS = 4096


def finetune_on_cells(
    vae: torch.nn.Module,
    crops: np.ndarray,
    quantizers: Sequence[Quantizer],
    steps: int,
    seed: int = 0,
) -> torch.nn.Module:
    """Fine-tune ``vae`` for ``steps`` updates on cell crops ``(N, C, *patch)`` (raw units).

    The crops are the ones embedding reads (centred, masked as asked), at most
    :data:`FINETUNE_CELLS` of them (seeded sample); see :mod:`cellvae.training.finetune`.
    """
    from cellvae.training.finetune import finetune

    if len(crops) > FINETUNE_CELLS:
        keep = np.random.default_rng(seed).choice(len(crops), FINETUNE_CELLS, replace=False)
        crops = crops[np.sort(keep)]
    x = torch.from_numpy(to_input(crops.astype(np.float32), quantizers))
    return finetune(vae, x, steps, seed=seed)


def finetuned_path(output: str | os.PathLike) -> Path:
    """Where the fine-tuned model of table ``output`` goes: ``<stem>.finetuned.ckpt``."""
    output = Path(output)
    return output.with_name(output.stem + SUFFIX)


def _read_base(ckpt: str | os.PathLike) -> dict[str, Any]:
    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # load_model has read it already; a file changed since
        raise CellvaeError(f"{ckpt}: not a readable checkpoint ({type(err).__name__})") from None
    return raw if isinstance(raw, dict) else {}


def _data_settings(base: dict[str, Any], ckpt: Path) -> dict[str, Any] | None:
    """The base's data settings with its training ``paths`` made absolute where found, so that
    the copy in another folder still finds the training image (its units, for decodings)."""
    from cellvae.inference.units import resolve_recorded

    data = base.get("datamodule_hyper_parameters")
    if not isinstance(data, dict):
        return None
    data = dict(data)
    if data.get("paths"):
        found = [(p, resolve_recorded(str(p), ckpt)) for p in data["paths"]]
        data["paths"] = [os.path.abspath(f) if f is not None else p for p, f in found]
    return data


def save_finetuned(
    vae: torch.nn.Module, base_ckpt: str | os.PathLike, path: str | os.PathLike, record: dict
) -> None:
    """Save ``vae`` (fine-tuned from ``base_ckpt``) as a checkpoint ``load_model`` reads.

    ``record`` (JSON-able: steps, seed, image, labels, ...) is stored as ``finetuned_from``
    together with the base checkpoint's absolute path and SHA-256.
    """
    from cellvae.inference.reconstruct import file_sha256

    base_path = Path(base_ckpt)
    base = _read_base(base_path)
    state = {f"model.{k}": v.detach().cpu().clone() for k, v in vae.state_dict().items()}
    ckpt: dict[str, Any] = {
        "hyper_parameters": dict(base["hyper_parameters"]),
        "state_dict": state,
        FINETUNED_FROM: {
            "ckpt": os.path.abspath(base_path),
            "sha256": file_sha256(base_path),
            **record,
        },
    }
    data = _data_settings(base, base_path)
    if data is not None:
        ckpt["datamodule_hyper_parameters"] = data
    torch.save(ckpt, path)


def finetuned_provenance(provenance: dict, path: str | os.PathLike) -> dict:
    """``provenance`` of a table whose codes come from the fine-tuned model at ``path``:
    ``inputs["ckpt"]`` names it, ``inputs["finetuned_from"]`` the checkpoint given."""
    inputs = dict(provenance.get("inputs") or {})
    if "ckpt" in inputs:
        inputs[FINETUNED_FROM] = inputs["ckpt"]
    inputs["ckpt"] = os.path.abspath(path)
    return {**provenance, "inputs": inputs}


def read_finetuned_from(ckpt: str | os.PathLike) -> dict | None:
    """The ``finetuned_from`` record of a checkpoint ``embed --finetune`` saved, else None."""
    record = _read_base(ckpt).get(FINETUNED_FROM)
    return dict(record) if isinstance(record, dict) else None


def check_decoding_model(table: str | os.PathLike, ckpt: str | os.PathLike) -> None:
    """Refuse (one line) decoding the codes of a fine-tuned table with the checkpoint it was
    fine-tuned from: they are the fine-tuned model's, which its provenance names."""
    from cellvae.io.provenance import read_provenance

    inputs = (read_provenance(table) or {}).get("inputs") or {}
    base = inputs.get(FINETUNED_FROM)
    if base and os.path.abspath(ckpt) == os.path.abspath(base):
        raise CellvaeError(
            f"{table}: its codes come from {inputs.get('ckpt')} (embed --finetune, from "
            f"{ckpt}); decode them with --ckpt {inputs.get('ckpt')}"
        )
