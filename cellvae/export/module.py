"""The network an exported model runs: raw intensities in, raw reconstruction and codes out.

The normalisation of :class:`cellvae.data.normalize.Quantizer` is part of the network
(baked into the weights) rather than described as bioimage.io pre-/post-processing:
cellvae rounds intensities to ``2**bits`` integer levels before the model sees them, which
no bioimage.io processing step can express (``scale_linear`` and ``clip`` can, rounding
cannot), and the discretized likelihoods are defined on exactly those levels. So a tile in
raw units gives the same numbers as ``cellvae reconstruct`` does on that tile::

    k = clip(round((v - lo) / (hi - lo) * (L - 1)), 0, L - 1)   # float64, as the quantizer
    x = (2k - (L - 1)) / (L - 1)                                 # float32 model input
    recon = lo + (mean(p(x | z)) + 1) * (hi - lo) / 2            # float32, raw units
    code  = E[q(g | x)]                                          # (B, D), the cell embedding
    local = VAE.local_summary(x)                                 # (B, K), hierarchical models

``local`` is the rest of the description ``cellvae embed`` writes per cell (its ``local_*``
columns): without it an exported model could not reproduce a table's maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cellvae.data.normalize import Quantizer


class ExportedVAE(nn.Module):
    """A VAE with its per-channel quantizers: ``forward(raw) -> (reconstruction, embedding)``,
    plus the local summary when ``local``.

    Parameters
    ----------
    vae : the trained model (eval mode), with ``reconstruct_params``, ``likelihood`` and
        ``embed``.
    quantizers : one per channel; their ``lo``/``hi``/``bits`` become buffers.
    mode : ``"mean"`` (what ``cellvae reconstruct`` writes by default) or ``"mode"``.
    local : also return ``vae.local_summary`` ``(B, K)`` (see :func:`has_local_summary`).

    ``raw`` is ``(B, C, *S)`` float32 intensities; the reconstruction has the same shape and
    units, the embedding is ``(B, D)`` posterior means.
    """

    def __init__(
        self,
        vae: nn.Module,
        quantizers: Sequence[Quantizer],
        mode: str = "mean",
        local: bool = False,
    ):
        super().__init__()
        self.vae = vae
        self.mode = mode
        self.local = bool(local)
        shape = (1, len(quantizers)) + (1,) * int(vae.ndim)
        lo = torch.tensor([q.lo for q in quantizers], dtype=torch.float64).reshape(shape)
        hi = torch.tensor([q.hi for q in quantizers], dtype=torch.float64).reshape(shape)
        self.register_buffer("lo", lo)
        self.register_buffer("span", hi - lo)
        self.levels = float(quantizers[0].n_levels - 1)
        if any(q.bits != quantizers[0].bits for q in quantizers):
            raise ValueError("quantizers: every channel must use the same bit depth")

    def to_input(self, raw: Tensor) -> Tensor:
        """Model inputs ``x`` on the level grid, float32, from raw intensities."""
        t = (raw.double() - self.lo) / self.span * self.levels
        k = torch.clamp(torch.round(t), 0.0, self.levels)
        return ((2.0 * k - self.levels).float()) / float(self.levels)

    def forward(self, raw: Tensor) -> tuple[Tensor, ...]:
        x = self.to_input(raw)
        params = self.vae.reconstruct_params(x)
        pick = self.vae.likelihood.mean if self.mode == "mean" else self.vae.likelihood.mode
        out = pick(params).float()
        recon = self.lo.float() + (out + 1.0) * (0.5 * self.span.float())
        code = self.vae.embed(x)[0].float()
        if self.local:
            return recon, code, self.vae.local_summary(x).float()
        return recon, code


def has_local_summary(vae: nn.Module, tile: Sequence[int]) -> bool:
    """Whether ``vae`` summarises its local latents (a hierarchical model): the exported
    network then has a third output. A flat model's summary has no columns."""
    x = torch.zeros(1, int(vae.in_channels), *tile)
    with torch.no_grad():
        return int(vae.local_summary(x).shape[1]) > 0
