"""Which pooled statistics of a trained model read the mitochondria phenotype best?

Trains the 2D preset on the phenotype set as ``bench_embed.py phenotypes`` does (seeds 0, 1;
2000 steps) and scores, by k-NN (features standardised on the training cells), several
read-outs of the same model: the description ``cellvae embed`` writes (``g`` + per-channel
mean and spread of each spatial group's posterior means), that plus the channels'
covariances, quantiles (10/50/90 %) or mean log-variances of the local posteriors, and the
encoder's pooled features (per-channel mean and spread at every scale). It backs the
sentence in docs/experiments.md that no read-out tried gets past about 0.70.

Run: ``python benchmarks/bench_readouts.py [--seeds 0 1] [--steps 2000]``
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_embed import PRESETS, classification, phenotype_crops, read_preset, train_preset

READOUTS = (
    ("g", "ms"),
    ("g", "ms", "cov"),
    ("g", "ms", "quantiles"),
    ("g", "ms", "logvar"),
    ("encoder",),
    ("g", "encoder"),
)


@torch.no_grad()
def statistics(vae, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every pooled statistic of ``x`` ``(N, 1, *S)`` under ``vae``, by name."""
    feats = vae.encode(x)
    posts = vae.top_down(feats, x.shape[0], tuple(x.shape[2:]), use_mean=True)[3][1:]
    out: dict[str, list] = {"g": [vae.global_latent.posterior_of(feats[-1]).mean]}
    out |= {"ms": [], "cov": [], "quantiles": [], "logvar": [], "encoder": []}
    levels = torch.tensor([0.1, 0.5, 0.9])
    for post in posts:
        mean = post.mean.flatten(2)
        out["ms"] += [mean.mean(2), mean.std(2)]
        centred = mean - mean.mean(2, keepdim=True)
        cov = torch.einsum("bcn,bdn->bcd", centred, centred) / mean.shape[2]
        upper = torch.triu_indices(cov.shape[1], cov.shape[1], 1)
        out["cov"].append(cov[:, upper[0], upper[1]])
        out["quantiles"].append(torch.quantile(mean, levels, dim=2).permute(1, 0, 2).flatten(1))
        out["logvar"].append(post.logvar.flatten(2).mean(2))
    for feature in feats:
        flat = feature.flatten(2)
        out["encoder"] += [flat.mean(2), flat.std(2)]
    return {k: torch.cat(v, 1).numpy() for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = read_preset(PRESETS[2], {})
    train, test, x_train, x_test = phenotype_crops()

    def draw(n, gen):
        return x_train[torch.randint(len(x_train), (n,), generator=gen)]

    for seed in args.seeds:
        vae = train_preset(recipe, (32, 32), draw, args.steps, seed)
        fit, held = statistics(vae, x_train), statistics(vae, x_test)
        for names in READOUTS:
            a = np.concatenate([fit[k] for k in names], 1)
            b = np.concatenate([held[k] for k in names], 1)
            row = classification(a, train.classes, b, test.classes, test.photons)
            print(seed, "+".join(names), a.shape[1], {k: round(v, 3) for k, v in row.items()})


if __name__ == "__main__":
    main()
