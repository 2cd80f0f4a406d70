"""Open a ``VAEModule`` checkpoint as a plain VAE: the one way inference code loads weights."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cellvae.errors import CellvaeError


def _reason(err: BaseException) -> str:
    """The first line of an error, without any advice to load with ``weights_only=False``."""
    lines = [ln for ln in str(err).strip().splitlines() if "weights_only" not in ln]
    return lines[0].strip() if lines else "unreadable"


def check_checkpoint(path: str | Path) -> None:
    """Refuse (one line) a ``--ckpt_path`` that is not a readable Lightning checkpoint."""
    _read(Path(path), "cpu")


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise CellvaeError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            # PyTorch's message suggests weights_only=False, which would run code from the
            # file: never pass that advice on
            raise CellvaeError(
                f"{path}: not a cellvae checkpoint (it holds Python objects other than "
                "weights, which are not loaded for safety)"
            ) from None
        raise CellvaeError(
            f"{path}: not a readable checkpoint (not a PyTorch file, or a damaged one)"
        ) from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CellvaeError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {_reason(err)})"
        ) from None
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
