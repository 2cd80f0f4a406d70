"""Distances between sets of patches, the FID-free sample-quality proxies of the experiments."""

from __future__ import annotations

import torch
from torch import Tensor


def nearest_rms(a: Tensor, b: Tensor) -> Tensor:
    """RMS pixel distance from every patch of ``a`` ``(N, ...)`` to its nearest in ``b``, ``(N,)``.

    Units are those of the model input (``[-1, 1]``, so 2 is the full intensity range).
    """
    a2, b2 = a.flatten(1).double(), b.flatten(1).double()
    return (torch.cdist(a2, b2).min(1).values / a2.shape[1] ** 0.5).float()


def rms(a: Tensor, b: Tensor) -> Tensor:
    """RMS pixel distance of every patch of ``a`` ``(N, ...)`` to one patch ``b``, ``(N,)``."""
    return ((a - b) ** 2).flatten(1).mean(1).sqrt()
