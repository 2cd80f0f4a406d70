"""Model variants of the 2D preset: bits/dim reached in a fixed CPU budget, and its cost.

Decides the presets' architecture by measurement, not habit. Each variant trains the 2D
preset's network (``configs/2d_hier_dlogistic.yaml``: widths [16, 32, 64], 4 latent
channels, the global latent, batch 8, AdamW 2e-3 with 20 warm-up steps, β warm-up over 100
steps) on random 64×64 patches of a sample image (top 3/4 train, bottom 1/4 test) for the
same process CPU time on one thread (which shared machines disturb less than wall time);
runs alternate between variants so machine load hits all alike. Reported: parameters,
updates, CPU ms per update, patches per CPU second and the test bits/dim (negative ELBO,
discretized logistic). The variants:

- ``full`` / ``half``: the finest latent at the input's resolution or at 1/2 (as HDN);
- ``half_shuffle``: ``half`` returning to full resolution by a sub-pixel convolution into a
  head of half the width (``head_upsample: shuffle``, ``head_width``);
- ``groups2``: ``half`` with two latent groups per scale (``groups_per_scale``, as VDVAE).

- ``today`` / ``routed``: the 2D (or, with ``--image mitochondria3d``, the 3D: batch 4,
  16x32x32 blocks, top 3/4 of Z for training) preset before and after issue 19 (``routed``:
  finest latent at 1/2 with the sub-pixel head, no spatial group at the top scale, where the
  global latent alone shapes the state, a full-resolution head as wide as the finest scale);
  ``routed_head8`` with a head half as wide, ``routed_bn`` (``routed_bn_head8``) with BN-VAE
  on the global latent (``global_norm: batch``).

Run: ``python benchmarks/bench_variants.py [--seconds 90 | --steps 2000] [--pairs 2]
[--json OUT] [--image nuclei|mitochondria] [--variants full half half_shuffle groups2]``

Measured (shared 2-core machine, ``--seconds 60 --pairs 2``):
- nuclei, ``--variants half half_shuffle full``: test bits/dim 4.930 (4.906, 4.953) at 106
  patches per CPU s, 4.915 (4.914, 4.916) at 121, 4.986 (5.019, 4.953) at 62:
  ``half_shuffle`` wins on bits/dim per CPU second. The 2D preset still uses ``full``: with
  ``half`` its global latent (the cell embedding) stays collapsed (``bench_embed.py``).
- mitochondria, ``--variants half groups2``: 1 group 62,058 parameters, 84 CPU ms/step,
  4.763 (4.727, 4.799); 2 groups 92,874, 116 CPU ms/step (1.38x), 4.726 (4.728, 4.723): a
  gain within the spread of the 1-group runs, so the presets keep 1 group.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cellvae.data.normalize import Quantizer
from cellvae.data.samples import mitochondria_2d, mitochondria_3d, nuclei_2d
from cellvae.experiments._train import evaluate, random_patches
from cellvae.models import build_model
from cellvae.training.objective import elbo_terms
from cellvae.training.schedules import lr_warmup_factor

PRESET = {
    "arch": "hierarchical",
    "ndim": 2,
    "in_channels": 1,
    "likelihood": "dlogistic",
    "bits": 8,
    "patch_size": [64, 64],
    "widths": [16, 32, 64],
    "latent_channels": 4,
    "global_dim": 32,
    "global_top": False,  # the variants below keep a spatial group at the top unless they say
}


#: the variants compared (added to PRESET)
VARIANTS = {
    "today": {"finest_latent": "full", "global_decoder": "bias"},  # the 2D preset before #19
    "routed": {  # the 2D preset after #19 (configs/2d_hier_dlogistic.yaml)
        "finest_latent": "half",
        "head_upsample": "shuffle",
        "head_width": 16,
        "global_top": True,
    },
    "full": {"finest_latent": "full"},
    "half": {"finest_latent": "half"},
    "half_shuffle": {"finest_latent": "half", "head_upsample": "shuffle", "head_width": 8},
    "groups2": {"finest_latent": "half", "groups_per_scale": 2},
}
VARIANTS["routed_head8"] = VARIANTS["routed"] | {"head_width": 8}
VARIANTS["routed_bn"] = VARIANTS["routed"] | {"global_norm": "batch"}  # BN-VAE on g
VARIANTS["routed_bn_head8"] = VARIANTS["routed_bn"] | {"head_width": 8}
IMAGES = {"nuclei": nuclei_2d, "mitochondria": mitochondria_2d, "mitochondria3d": mitochondria_3d}
#: the 3D preset (configs/3d_hier_dlogistic.yaml) before and after issue 19, batch 4
PRESET_3D = PRESET | {"ndim": 3, "patch_size": [16, 32, 32], "widths": [8, 16, 32]}
VARIANTS_3D = {
    "today": {"finest_latent": "half", "global_decoder": "bias"},
    "routed": VARIANTS["routed"] | {"head_width": 8},
}


def random_blocks(volume: np.ndarray, patch, n: int, seed: int) -> torch.Tensor:
    """``n`` random ``patch`` blocks of a 3D ``volume``, quantised as ``random_patches`` does."""
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(volume, [0.1, 99.9])
    x = Quantizer(float(lo), float(hi), 8).quantize(volume.astype(np.float32))
    starts = [rng.integers(0, s - p + 1, n) for s, p in zip(volume.shape, patch)]
    blocks = [x[a : a + patch[0], b : b + patch[1], c : c + patch[2]] for a, b, c in zip(*starts)]
    return torch.from_numpy(np.stack(blocks)[:, None].astype(np.float32))


def train_for(
    vae, data: torch.Tensor, seconds: float, batch: int = 8, steps: int | None = None
) -> tuple[int, float]:
    """Train until ``seconds`` of process CPU time have passed (or for ``steps`` updates);
    returns (steps, cpu seconds)."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    vae.train()
    start, step = time.process_time(), 0
    while (step < steps) if steps else (time.process_time() - start < seconds):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * lr_warmup_factor(step, 20)
        x = data[torch.randint(len(data), (batch,), generator=gen)]
        terms = elbo_terms(vae, x, beta=min(1.0, (step + 1) / 100))
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 200.0)
        opt.step()
        step += 1
    return step, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="CPU seconds per run")
    parser.add_argument("--steps", type=int, help="train this many updates instead")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--image", choices=sorted(IMAGES), default="nuclei")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    image = np.asarray(IMAGES[args.image]().image, dtype=np.float32)
    cut = image.shape[0] * 3 // 4  # along Y in 2D, Z in 3D
    if image.ndim == 3:
        preset, variants, batch = PRESET_3D, VARIANTS_3D, 4
        train = random_blocks(image[:cut], (16, 32, 32), 2000, seed=0)
        test = random_blocks(image[cut:], (16, 32, 32), 256, seed=1)
    else:
        preset, variants, batch = PRESET, VARIANTS, 8
        train = random_patches(image[:cut], 64, 2000, seed=0)
        test = random_patches(image[cut:], 64, 256, seed=1)
    rows = []
    for pair in range(args.pairs):
        for name in args.variants:
            torch.manual_seed(pair)
            vae = build_model(**(preset | variants[name]))
            steps, cpu = train_for(vae, train, args.seconds, batch, steps=args.steps)
            stats = evaluate(vae, test)
            row = {
                "variant": name,
                "pair": pair,
                "params": sum(p.numel() for p in vae.parameters()),
                "steps": steps,
                "cpu_s": round(cpu, 1),
                "cpu_ms_per_step": round(1000 * cpu / steps, 1),
                "patches_per_cpu_s": round(batch * steps / cpu, 2),
                "test_bits_per_dim": round(stats["bits_per_dim"], 4),
            }
            rows.append(row)
            print(row, flush=True)
    for name in args.variants:
        mine = [r for r in rows if r["variant"] == name]
        bpd = [r["test_bits_per_dim"] for r in mine]
        rate = [r["patches_per_cpu_s"] for r in mine]
        print(
            f"{name}: {mine[0]['params']} parameters, test bits/dim {np.mean(bpd):.4f} "
            f"(runs {bpd}), {np.mean(rate):.1f} patches per CPU second"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
