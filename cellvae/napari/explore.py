"""The latent explorer's logic: a checkpoint's prototype, interpolations and traversals.

Images are decoded with :mod:`cellvae.inference.generate` from the top-group code (the
``z_mean_*`` columns of a ``cellvae embed`` table) and mapped to raw intensities with the
original image's stored statistics when known, else to the model's integer level scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError


@dataclass
class Explorer:
    """A loaded model ready to decode: ``vae``, its ``patch`` and raw-unit ``quantizers``."""

    vae: object
    patch: tuple[int, ...]
    quantizers: list
    latent_dim: int

    @classmethod
    def load(cls, ckpt: str | Path, image_ndim: int, stats: dict | None = None) -> Explorer:
        """Load ``ckpt``; refuse (one line) a model whose ndim differs from the image's."""
        import torch

        from cellvae.data.normalize import Quantizer
        from cellvae.inference.model import default_patch, load_model, quantizers_for

        vae, hparams = load_model(ckpt)
        if vae.ndim != image_ndim:
            raise CellvaeError(
                f"{ckpt}: a {vae.ndim}D model; the image is {image_ndim}D: "
                f"choose a {image_ndim}D checkpoint"
            )
        patch = default_patch(vae, hparams)
        bits = int(hparams.get("bits", 8))
        if stats is not None:
            quantizers = quantizers_for(stats, vae.in_channels, bits, None)
        else:
            quantizers = [Quantizer(0.0, 2.0**bits - 1, bits)] * vae.in_channels
        with torch.no_grad():
            mean, _ = vae.embed(torch.zeros(1, vae.in_channels, *patch))
        return cls(vae, patch, quantizers, int(mean.shape[1]))

    def _raw(self, x: np.ndarray) -> np.ndarray:
        from cellvae.inference.generate import to_stack

        return to_stack(x, self.quantizers)

    def prototype(self) -> np.ndarray:
        """The image decoded at ``z = 0``, ``(*patch)`` (``(C, *patch)`` for several channels)."""
        from cellvae.inference.generate import prototype

        return self._raw(prototype(self.vae, self.patch))[0]

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int = 7) -> np.ndarray:
        """Decodings from code ``a`` to code ``b``, stacked ``(steps, *patch)``."""
        from cellvae.inference.generate import interpolate

        self._check(a), self._check(b)
        return self._raw(interpolate(self.vae, a, b, steps, self.patch))

    def traverse(self, base: np.ndarray, dim: int, values: Sequence[float]) -> np.ndarray:
        """Decodings of ``base`` with latent ``dim`` set to each of ``values``, ``(V, *patch)``."""
        import torch

        self._check(base)
        if not 0 <= dim < self.latent_dim:
            raise CellvaeError(f"latent dimension {dim} is out of range 0..{self.latent_dim - 1}")
        codes = np.repeat(np.asarray(base, np.float32)[None], len(values), axis=0)
        codes[:, dim] = values
        with torch.no_grad():
            params = self.vae.decode_embedding(torch.from_numpy(codes), self.patch)
            x = self.vae.likelihood.mean(params).float().cpu().numpy()
        return self._raw(x)

    def _check(self, code: np.ndarray) -> None:
        if np.asarray(code).size != self.latent_dim:
            raise CellvaeError(
                f"a code of length {np.asarray(code).size}; this model's latent has "
                f"{self.latent_dim} dimensions: the table comes from another checkpoint"
            )


def codes_of(table, labels: Sequence[int]) -> list[np.ndarray]:
    """The ``z_mean_*`` codes of the cells with these label ids (``index`` column)."""
    from cellvae.inference.generate import table_codes

    return table_codes(table, labels, "index", "the cells table")
