"""12/16-bit data end to end: does the hierarchical discretized-logistic model's bits/dim go
below the cap of the old log-scale floor (-7: 2.90 bits/dim at 12 bits, 6.90 at 16)?

Writes low-noise synthetic mitochondria TIFFs (``cellvae.data.synthetic.mitochondria``, 256²,
no read noise, bright enough that the background's shot noise is about 2 levels at 16 bits
and 0.8 at 12 bits, so the data allow far less than the cap), ingests them with
``cellvae ingest``, trains a small hierarchical dlogistic model with ``cellvae fit`` (the 2D
preset with ``bits`` set explicitly, 16×16 patches, widths [8, 16, 32], the finest latent at
half resolution with an 8-channel sub-pixel head, cosine LR decay to 1/1000) for
each floor, and prints the validation bits/dim from the run's ``metrics.csv``, plus the
per-pixel bits of the final checkpoint on the whole image split into background and
foreground, scored under the trained floor and under -7.

Run: ``python benchmarks/bench_bit_depth.py OUTDIR [--bits 16 12] [--steps 30000]
[--floors null -7.0]`` (each run about 50 CPU-s per 1000 steps on one thread).

Measured (``--bits 16 --steps 30000 --floors null``, 25 min on one thread): validation
bits/dim 6.39, below the old cap 6.90; on the whole image (all 16×16 tiles) 6.13 bits/dim
of distortion plus 0.30 of rate = 6.43, of which the background costs 4.32 bits and the
tubules 11.6; the same checkpoint re-scored with the floor at -7 costs 8.14 (+0.30). After
4000 steps it was 8.49: precision at 16 bits needs the long, decaying learning rate. At 12
bits (old cap 2.91): 3.59 with the default 30 networks (background 2.33); ``--tubules 8``
gives 2.77 (whole image 2.83 + 0.08 of rate, level with the cap; 3.82 + 0.08 at -7).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch

from cellvae.data.normalize import Quantizer
from cellvae.data.synthetic import mitochondria
from cellvae.training.checkpoint import load_vae
from cellvae.training.objective import elbo_terms

#: photons at the peak and in the background per bit depth (no read noise)
EXPOSURE = {16: (3e6, 1e4), 12: (6e5, 1e4)}
PRESET = Path(__file__).resolve().parents[1] / "configs" / "2d_hier_dlogistic.yaml"


def old_cap(bits: int) -> float:
    """Fewest bits an interior level can cost with the log-scale floored at -7."""
    return -math.log2(math.tanh((2 / (2**bits - 1)) / (4 * math.exp(-7.0))))


def fit_argv(zarr: Path, bits: int, steps: int, floor: str, root: Path) -> list[str]:
    """The ``cellvae fit`` command of one run."""
    return [
        *("cellvae", "fit", "--config", str(PRESET)),
        *("--data.paths", f"[{zarr}]", "--data.bits", str(bits)),
        *("--data.patch_size", "[16, 16]", "--data.sampler", "random"),
        *("--model.widths", "[8, 16, 32]", "--model.latent_channels", "2"),
        *("--model.finest_latent", "half", "--model.head_upsample", "shuffle"),
        *("--model.head_width", "8"),
        *("--model.global_dim", "8", "--model.min_log_scale", floor),
        *("--model.lr_schedule", "cosine", "--model.lr_decay_steps", str(steps)),
        *("--model.lr_decay_factor", "0.001", "--trainer.max_steps", str(steps)),
        *("--trainer.val_check_interval", str(min(steps, 2000))),
        *("--trainer.limit_val_batches", "16", "--trainer.default_root_dir", str(root)),
    ]


def last_val_bits(root: Path) -> float:
    """The last ``val/bits_per_dim`` in the run's ``metrics.csv``."""
    (metrics,) = root.glob("lightning_logs/version_*/metrics.csv")
    with open(metrics) as f:
        values = [r["val/bits_per_dim"] for r in csv.DictReader(f) if r.get("val/bits_per_dim")]
    return float(values[-1])


@torch.no_grad()
def per_pixel_bits(ckpt: Path, image: np.ndarray, floor: float | None) -> dict[str, float]:
    """Mean bits of the levels (sampled latents, no KL) of 16×16 tiles of ``image``, over all
    pixels, the background (within 20 levels of the median) and the rest, plus the rate (KL,
    bits/dim) that completes the whole image's bound; ``floor`` replaces the trained log-scale
    floor (``None``: keep it)."""
    vae, hp = load_vae(ckpt)
    if floor is not None:
        vae.likelihood.min_log_scale = floor
    lo, hi = np.percentile(image, [0.1, 99.9])
    x = torch.from_numpy(Quantizer(float(lo), float(hi), hp["bits"]).quantize(image))
    t = 16
    tiles = x.unfold(0, t, t).unfold(1, t, t).reshape(-1, 1, t, t)
    torch.manual_seed(0)
    terms = elbo_terms(vae, tiles, beta=1.0)
    bits = -vae.likelihood.log_prob(terms.output.params, tiles) / math.log(2)
    bg = tiles <= float(tiles.median()) + 20 * vae.likelihood.bin_width
    stats = {"all": bits.mean(), "background": bits[bg].mean(), "foreground": bits[~bg].mean()}
    stats["rate"] = terms.kl.mean() / terms.dims / math.log(2)
    return {k: round(float(v), 3) for k, v in stats.items()} | {
        "background_share": round(float(bg.float().mean()), 3)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 12])
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--floors", nargs="+", default=["null", "-7.0"])
    parser.add_argument(
        "--tubules", type=int, default=30, help="mitochondrial networks in the 256² image"
    )
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    for bits in args.bits:
        photons, background = EXPOSURE[bits]
        image = mitochondria(
            (256, 256),
            seed=0,
            n_tubules=args.tubules,
            photons=photons,
            background=background,
            read_noise=0.0,
            bits=bits,
        ).image
        tag = f"mito{bits}" + ("" if args.tubules == 30 else f"_t{args.tubules}")
        tif, zarr = args.outdir / f"{tag}.tif", args.outdir / f"{tag}.ome.zarr"
        if not zarr.exists():
            tifffile.imwrite(tif, image)
            subprocess.run(["cellvae", "ingest", str(tif), "-o", str(zarr)], check=True)
        for floor in args.floors:
            root = args.outdir / f"{tag}_floor{floor}_s{args.steps}"
            if not root.exists():
                subprocess.run(fit_argv(zarr, bits, args.steps, floor, root), check=True)
            (ckpt,) = root.glob("lightning_logs/version_*/checkpoints/last.ckpt")
            scored = {
                "trained floor": per_pixel_bits(ckpt, image.astype(np.float32), None),
                "floor -7": per_pixel_bits(ckpt, image.astype(np.float32), -7.0),
            }
            print(
                f"{bits} bit, min_log_scale {floor}, {args.steps} steps: val bits/dim "
                f"{last_val_bits(root):.3f} (old cap {old_cap(bits):.2f}); per pixel {scored}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
