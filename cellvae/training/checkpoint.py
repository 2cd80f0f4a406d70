"""Open a ``VAEModule`` checkpoint as a plain VAE: the one way inference code loads weights."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cellvae.errors import CellvaeError


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise CellvaeError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CellvaeError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict):
        raise CellvaeError(f"{path}: not a Lightning checkpoint")
    return ckpt


def load_vae(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the VAE saved in a ``cellvae fit`` checkpoint and load its weights.

    The EMA weights are used when the run kept them (they are what validation scored).
    Loading uses ``torch.load(weights_only=True)``: no code in the file is executed.

    Returns
    -------
    vae : nn.Module
        The network in eval mode on ``map_location``.
    hparams : dict
        The ``VAEModule`` hyper-parameters (``arch``, ``ndim``, ``bits``, ``patch_size``, ...).

    Raises
    ------
    CellvaeError
        The file is missing, unreadable, or not a cellvae VAE checkpoint.
    """
    from cellvae.training.module import MODEL_KEYS, build_vae

    path = Path(path)
    ckpt = _read(path, map_location)
    hparams = ckpt.get("hyper_parameters")
    state = ckpt.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise CellvaeError(f"{path}: not a cellvae VAE checkpoint (no hyper-parameters/weights)")
    missing = [k for k in MODEL_KEYS if k not in hparams]
    if missing or not any(k.startswith("model.") for k in state):
        raise CellvaeError(
            f"{path}: not a cellvae VAE checkpoint (a checkpoint of another model type)"
        )
    hparams = dict(hparams)
    vae = build_vae(hparams)
    prefix = "ema.module." if any(k.startswith("ema.module.") for k in state) else "model."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        vae.load_state_dict(weights)
    except RuntimeError as err:
        raise CellvaeError(f"{path}: weights do not fit the saved architecture ({err})") from None
    return vae.to(map_location).eval(), hparams
