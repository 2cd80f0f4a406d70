"""The files of an exported model besides its weights: test tile, cover, README.

Everything here is computed from the checkpoint and one image (its stored statistics set the
normalisation; a tile of it is the test input), so an export is reproducible and needs no
network.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cellvae.data.normalize import Quantizer


@dataclass
class ExportInfo:
    """What the README says about a model: where it came from and how well it compresses."""

    name: str
    ckpt: str
    image: str
    axes: str
    tile: tuple[int, ...]
    voxel_size: dict[str, float]
    hparams: dict
    data: dict
    quantizers: list[Quantizer]
    embedding_dim: int
    tile_bits_per_dim: float
    local_dim: int = 0
    authors: list[str] = field(default_factory=lambda: ["cellvae"])
    logged: dict[str, float] = field(default_factory=dict)


def test_tile(array, axes: str, tile: tuple[int, ...]) -> np.ndarray:
    """The central ``tile`` of an image ``(…, C?, *S)`` as ``(1, C, *tile)`` float32.

    Leading ``t`` (and ``z`` for a 2D tile) take their middle index; an image smaller than
    the tile along an axis is refused by the caller.
    """
    spatial = [a for a in axes if a in "zyx"][-len(tile) :]
    index = []
    for a, n in zip(axes, array.shape):
        if a in spatial:
            side = tile[spatial.index(a)]
            start = (n - side) // 2
            index.append(slice(start, start + side))
        elif a == "c":
            index.append(slice(None))
        else:
            index.append(n // 2)
    crop = np.asarray(array[tuple(index)], dtype=np.float32)
    if "c" not in axes:
        crop = crop[None]
    return crop[None]


def tile_bits_per_dim(vae, x: torch.Tensor, seed: int = 0) -> float:
    """Negative ELBO of the model inputs ``x`` ``(1, C, *S)`` in bits per dimension (one
    posterior draw, seeded; the bound the training logs, on this one tile)."""
    from cellvae.training.objective import elbo_terms

    torch.manual_seed(seed)
    with torch.no_grad():
        terms = elbo_terms(vae, x, beta=1.0)
    return float(terms.per_dim(vae.likelihood)["bits_per_dim"])


def logged_metrics(ckpt: Path) -> dict[str, float]:
    """The last validation bits/dim the run logged (``metrics.csv`` beside its checkpoints)."""
    for folder in (ckpt.parent, ckpt.parent.parent):
        path = folder / "metrics.csv"
        if path.is_file():
            last: dict[str, str] = {}
            with path.open() as f:
                for row in csv.DictReader(f):
                    if row.get("val/bits_per_dim"):
                        last = row
            keys = ("val/bits_per_dim", "val/iwae_bits_per_dim", "step")
            return {k: float(last[k]) for k in keys if last.get(k)}
    return {}


def _plane(x: np.ndarray) -> np.ndarray:
    """The middle plane of the first channel of ``(1, C, *S)``."""
    x = x[0, 0]
    while x.ndim > 2:
        x = x[x.shape[0] // 2]
    return x


def write_cover(path: Path, raw: np.ndarray, recon: np.ndarray, q: Quantizer) -> Path:
    """A 2:1 PNG: the test tile (left) and its reconstruction (right), same contrast."""
    import imageio.v3 as iio

    pair = np.concatenate([_plane(raw), _plane(recon)], axis=1)
    grey = np.clip((pair - q.lo) / (q.hi - q.lo), 0, 1)
    scale = max(1, math.ceil(256 / grey.shape[0]))
    grey = np.kron(grey, np.ones((scale, scale)))
    iio.imwrite(path, (grey * 255).round().astype(np.uint8))
    return path


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _local_line(info: ExportInfo) -> str:
    """The README's item for the ``local_summary`` output, when the package has one."""
    if not info.local_dim:
        return ""
    return (
        f"\n- `local_summary`: `(batch, {info.local_dim})`, per channel the spatial mean and "
        "spread of each local latent group's posterior mean: the `local_*` columns `cellvae "
        "embed` writes beside the code (the table's maps are made from both)."
    )


def readme(info: ExportInfo) -> str:
    """The model's documentation (``README.md``), with a Validation section."""
    hp, data = info.hparams, info.data
    norm = "\n".join(
        f"| {c} | {q.lo:g} | {q.hi:g} | {q.bits} |" for c, q in enumerate(info.quantizers)
    )
    logged = info.logged
    logged_line = (
        f"- last validation of the run (step {int(logged.get('step', 0))}): "
        f"{_fmt(logged.get('val/bits_per_dim'))} bits/dim (ELBO), "
        f"{_fmt(logged.get('val/iwae_bits_per_dim'))} bits/dim (IWAE)"
        if logged
        else "- the run's metrics.csv was not found beside the checkpoint"
    )
    tile = ", ".join(str(t) for t in info.tile)
    voxels = ", ".join(f"{a} {v:g}" for a, v in info.voxel_size.items())
    return f"""# {info.name}

A variational autoencoder trained with cellvae on microscopy
{"volumes" if len(info.tile) == 3 else "images"}: a {hp.get("arch")} VAE with a
{hp.get("likelihood")} likelihood on {hp.get("bits")}-bit intensity levels.

## Inputs and outputs

- `raw`: a tile of raw intensities, `(batch, channel, {", ".join(info.axes)})` =
  `(B, {len(info.quantizers)}, {tile})`, float32, in the units of the training image.
- `reconstruction`: the same tile reconstructed (the mean of the decoder's distribution at
  the posterior mean of every latent), float32, raw units: what `cellvae reconstruct` writes
  for this tile.
- `embedding`: the posterior mean of the most global latent, `(batch, {info.embedding_dim})`:
  the per-patch code that `cellvae embed` gives each cell.{_local_line(info)}

Whole images are reconstructed tile by tile with overlapping tiles blended
(`cellvae reconstruct`); the model itself sees one tile at a time.

## Normalisation (part of the weights)

cellvae maps raw intensities `v` to integer levels and the model input `x`:
`k = clip(round((v - lo) / (hi - lo) * (L - 1)), 0, L - 1)`, `x = 2k / (L - 1) - 1`,
`L = 2**bits`, and the output back with `lo + (x + 1) / 2 * (hi - lo)`. The rounding to levels
cannot be written as bioimage.io pre-processing, so it is built into the TorchScript network;
`lo`/`hi` are the 0.1 and 99.9 percentiles stored with the training image.

| channel | lo | hi | bits |
|---|---|---|---|
{norm}

## Training data

- image: `{info.image}` (axes `{info.axes}`, voxel size {voxels})
- patches {hp.get("patch_size")} drawn by the `{data.get("sampler", "?")}` sampler, batch \
{data.get("batch_size", "?")}, {data.get("patches_per_epoch", "?")} patches per epoch,
  a share of {data.get("val_fraction", "?")} of each image held out for validation
- checkpoint: `{Path(info.ckpt).name}`

## Validation

Bits per dimension (lower is better; the negative ELBO, an upper bound on the model's
code length for the quantised image):

{logged_line}
- on the test tile of this package: {_fmt(info.tile_bits_per_dim)} bits/dim (one posterior
  draw, seed 0)

The package test (`bioimageio test`) checks that the network reproduces the test outputs;
cellvae's own tests check that they equal `cellvae reconstruct` on the same tile within 1e-4.

## Citation

Cite the VAE (Kingma & Welling 2014, doi:10.48550/arXiv.1312.6114) and, for hierarchical
models, the ladder / very deep VAE (Sønderby et al. 2016, doi:10.48550/arXiv.1602.02282;
Child 2021, doi:10.48550/arXiv.2011.10650).
"""
