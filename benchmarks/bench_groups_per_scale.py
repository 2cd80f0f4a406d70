"""Latent groups per scale, 1 or 2: parameters, CPU time per update and bits/dim in a budget.

VDVAE stacks several latent groups at each scale; cellvae's hierarchical model can too
(``groups_per_scale``). Whether the presets should is decided here. Both settings train the
2D preset's network (``configs/2d_hier_dlogistic.yaml``: widths [16, 32, 64], 4 latent
channels, the global latent, finest latent at 1/2 scale, batch 8, AdamW 2e-3 with 20 warm-up
steps, β warm-up over 100 steps) on random 64×64 patches of the preset's data, the synthetic
``mitochondria_2d`` sample (top 3/4 train, bottom 1/4 test), for the same process CPU time on
one thread. Runs alternate 1/2 so machine load hits both alike. Reported: parameters, updates,
CPU ms per update and the test bits/dim (negative ELBO, discretized logistic).

Run: ``python benchmarks/bench_groups_per_scale.py [--seconds 90] [--pairs 2] [--json OUT]``

Measured (``--seconds 60 --pairs 2``, nice 19 on a shared 2-core machine): 1 group 62,058
parameters, 84 CPU ms/step, test 4.763 bits/dim (4.727, 4.799); 2 groups 92,874, 116 CPU
ms/step (1.38x), 4.726 (4.728, 4.723). The 0.04 bits/dim gain is within the spread of the
1-group runs, so the presets keep 1 group.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from bench_finest_latent import PRESET, train_for

from cellvae.data.samples import mitochondria_2d
from cellvae.experiments._train import evaluate, random_patches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="CPU seconds per run")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cellvae.models import build_model

    image = np.asarray(mitochondria_2d().image, dtype=np.float32)
    cut = image.shape[0] * 3 // 4
    train = random_patches(image[:cut], 64, 2000, seed=0)
    test = random_patches(image[cut:], 64, 256, seed=1)
    rows = []
    for pair in range(args.pairs):
        for groups in (1, 2):
            torch.manual_seed(pair)
            vae = build_model(**PRESET, finest_latent="half", groups_per_scale=groups)
            steps, cpu = train_for(vae, train, args.seconds)
            stats = evaluate(vae, test)
            row = {
                "groups_per_scale": groups,
                "pair": pair,
                "params": sum(p.numel() for p in vae.parameters()),
                "steps": steps,
                "cpu_s": round(cpu, 1),
                "cpu_ms_per_step": round(1000 * cpu / steps, 1),
                "test_bits_per_dim": round(stats["bits_per_dim"], 4),
            }
            rows.append(row)
            print(row, flush=True)
    for groups in (1, 2):
        mine = [r for r in rows if r["groups_per_scale"] == groups]
        bpd = [r["test_bits_per_dim"] for r in mine]
        ms = [r["cpu_ms_per_step"] for r in mine]
        print(
            f"groups_per_scale {groups}: params {mine[0]['params']}, "
            f"{np.mean(ms):.1f} CPU ms/step, test bits/dim {np.mean(bpd):.4f} (runs {bpd})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
