"""The latent explorer's logic: a checkpoint's prototype, interpolations and traversals.

Images are decoded with :mod:`cellvae.inference.generate` from the top-group code (the
``z_mean_*`` columns of a ``cellvae embed`` table) and written in the data's units
(:func:`cellvae.inference.units.data_units`): the intensity mapping and voxel size of the
image in view when it carries ingest statistics, else of the checkpoint's training image,
so a decoding is directly comparable with the image. Everything here runs in a worker
thread; the optional ``job`` reports progress and honours cancel between decodings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError


@dataclass
class Explorer:
    """A loaded model ready to decode: ``vae``, its ``patch`` and the data's ``units``."""

    vae: object
    patch: tuple[int, ...]
    units: object
    latent_dim: int

    @property
    def quantizers(self) -> list:
        """One raw-intensity mapping per channel."""
        return self.units.quantizers

    @classmethod
    def load(cls, ckpt: str | Path, image_ndim: int, image: str | Path | None = None) -> Explorer:
        """Load ``ckpt``; refuse (one line) a model whose ndim differs from the image's.

        ``image`` is an OME-Zarr whose statistics and voxel size the decodings take (the
        original in view); without it, the checkpoint's training image is used.
        """
        import torch

        from cellvae.inference.model import default_patch, load_model
        from cellvae.inference.units import data_units

        vae, hparams = load_model(ckpt)
        if vae.ndim != image_ndim:
            raise CellvaeError(
                f"{ckpt}: a {vae.ndim}D model; the image is {image_ndim}D: "
                f"choose a {image_ndim}D checkpoint"
            )
        patch = default_patch(vae, hparams)
        units = data_units(ckpt, hparams, vae.in_channels, vae.ndim, image)
        with torch.no_grad():
            mean, _ = vae.embed(torch.zeros(1, vae.in_channels, *patch))
        return cls(vae, patch, units, int(mean.shape[1]))

    def _raw(self, x: np.ndarray) -> np.ndarray:
        from cellvae.inference.generate import to_stack

        return to_stack(x, self.quantizers)

    def prototype(self) -> np.ndarray:
        """The image decoded at ``z = 0``, ``(*patch)`` (``(C, *patch)`` for several channels)."""
        from cellvae.inference.generate import prototype

        return self._raw(prototype(self.vae, self.patch))[0]

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int = 7, job=None) -> np.ndarray:
        """Decodings from code ``a`` to code ``b``, stacked ``(steps, *patch)``.

        Decoded one image at a time, so that ``job`` shows progress and can stop it.
        """
        self._check(a), self._check(b)
        if steps < 2:
            raise CellvaeError(f"steps: {steps} must be >= 2")
        a, b = np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()
        out = []
        for i, t in enumerate(np.linspace(0.0, 1.0, steps, dtype=np.float32)):
            out.append(self._decode(((1 - t) * a + t * b)[None]))
            if job is not None:
                job.progress((i + 1) / steps)
        return np.concatenate(out)

    def traverse(self, base: np.ndarray, dim: int, values: Sequence[float]) -> np.ndarray:
        """Decodings of ``base`` with latent ``dim`` set to each of ``values``, ``(V, *patch)``."""
        self._check(base)
        if not 0 <= dim < self.latent_dim:
            raise CellvaeError(f"latent dimension {dim} is out of range 0..{self.latent_dim - 1}")
        codes = np.repeat(np.asarray(base, np.float32)[None], len(values), axis=0)
        codes[:, dim] = values
        return self._decode(codes)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

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


@dataclass
class Placement:
    """Where a decoded image goes: beside the image, on its grid and with its contrast.

    ``scale``/``translate``/``units``/``axis_labels`` cover the model's spatial axes; rows
    stack the prototype, the traversal and the interpolation strip below each other.
    """

    scale: list[float]
    origin: list[float]
    right: float
    units: tuple | None
    axis_labels: tuple | None
    contrast_limits: tuple[float, float] | None

    def kwargs(self, patch: Sequence[int], row: int) -> dict:
        """Layer keyword arguments for a decoding of ``patch`` pixels in ``row`` (0, 1, 2)."""
        height = float(patch[-2]) * self.scale[-2]
        translate = list(self.origin)
        translate[-2] = self.origin[-2] + row * 1.25 * height
        translate[-1] = self.right + 0.25 * float(patch[-1]) * self.scale[-1]
        out = {"scale": list(self.scale), "translate": translate}
        if self.units is not None:
            out["units"] = self.units
        if self.axis_labels is not None:
            out["axis_labels"] = self.axis_labels
        if self.contrast_limits is not None:
            out["contrast_limits"] = tuple(self.contrast_limits)
        return out


def placement_of(anchor, image, ndim: int) -> Placement:
    """The :class:`Placement` beside layer ``anchor`` for an ``ndim``-D model.

    ``image`` (the original image layer, or None) gives the contrast limits, so that a
    decoding in the image's units looks like the image; the grid is ``anchor``'s last
    ``ndim`` axes (its voxel size, z included, and its units).
    """
    if anchor is None:
        return Placement([1.0] * ndim, [0.0] * ndim, 0.0, None, None, None)
    scale = [float(s) for s in anchor.scale[-ndim:]]
    lo, hi = (np.asarray(e, float)[-ndim:] for e in anchor.extent.world)
    units = tuple(str(u) for u in anchor.units[-ndim:]) if hasattr(anchor, "units") else None
    labels = tuple(anchor.axis_labels[-ndim:]) if hasattr(anchor, "axis_labels") else None
    limits = tuple(float(c) for c in image.contrast_limits) if image is not None else None
    origin = [float(v) for v in lo]
    origin[-2] = float(lo[-2])
    return Placement(scale, origin, float(hi[-1]), units, labels, limits)
