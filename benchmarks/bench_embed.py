"""Embedding quality: do cell embeddings separate known phenotypes better than PCA of the pixels?

A generated population (:func:`cellvae.data.synthetic.cell_population`: tubular, fragmented and
networked mitochondria, one cell per 32×32 crop at a random position, three noise levels) is
split into a training and a test population drawn with different seeds. ``--jitter J`` keeps
each cell within ±J px of its crop's centre, as ``cellvae embed`` crops cells at their
centroid; without it cells sit anywhere in the crop (a test of position robustness). Each
VAE trains on the training crops only (no labels), then embeds every cell with ``vae.embed``
(posterior means); the baseline is PCA of the raw crops, fitted on the training crops, with as
many components as the global latent has numbers. Scores, on the test cells:

- k-NN accuracy (k = 5, Euclidean) of a classifier fitted on the training cells' embeddings,
  overall and per noise level (chance = 1/3);
- silhouette score of the test embeddings under the true classes (-1..1, higher = tighter,
  better separated classes).

Models: the hierarchical VAE with a global latent (the presets' choice), the same without one
(its embedding is the flattened top spatial group), and the flat VAE.

For each VAE it also reports how many embedding dimensions are active (variance of the
posterior mean over test cells > 0.01) and the embedding's mean KL per cell (nats).

Run: ``python benchmarks/bench_embed.py [--steps 2000] [--jitter 2] [--threads 1]
[--finest-latent full|half] [--head-upsample nearest|shuffle] [--seed 0] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cellvae.data.normalize import Quantizer
from cellvae.data.synthetic import cell_population
from cellvae.experiments._train import train
from cellvae.models import build_model

SIZE = 32
BASE = {"ndim": 2, "in_channels": 1, "likelihood": "dlogistic", "bits": 8, "patch_size": [32, 32]}
MODELS = {
    "hier_global": {"arch": "hierarchical", "widths": [16, 32, 64], "latent_channels": 4},
    "hier_spatial_top": {"arch": "hierarchical", "widths": [16, 32, 64], "latent_channels": 4},
    "flat": {"arch": "flat", "widths": [16, 32, 64]},
}


def crops_to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 crops ``(N, Y, X)`` -> model input ``(N, 1, Y, X)`` on the 8-bit grid in [-1, 1]."""
    x = Quantizer(0.0, 255.0, 8).quantize(images.astype(np.float32))
    return torch.from_numpy(x[:, None].astype(np.float32))


@torch.no_grad()
def embed(vae, x: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances ``(N, D)`` of ``vae.embed``."""
    vae.eval()
    parts = [vae.embed(x[i : i + batch]) for i in range(0, len(x), batch)]
    return tuple(np.concatenate([p[k].numpy() for p in parts]) for k in (0, 1))


def usage(mean: np.ndarray, logvar: np.ndarray) -> dict[str, float]:
    """Active dimensions (variance of the mean > 0.01) and mean KL to N(0, I) per cell, nats."""
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1.0 - logvar)
    return {"active_dims": int((mean.var(0) > 0.01).sum()), "kl_nats": float(kl.sum(1).mean())}


def scores(train_codes, train_y, test_codes, test_y, test_photons) -> dict[str, float]:
    """k-NN accuracy (overall and per noise level) and silhouette score of test codes."""
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=5).fit(train_codes, train_y)
    hit = knn.predict(test_codes) == test_y
    out = {"dims": int(train_codes.shape[1]), "knn_accuracy": float(hit.mean())}
    for level in np.unique(test_photons):
        out[f"knn_accuracy_photons_{level:g}"] = float(hit[test_photons == level].mean())
    out["silhouette"] = float(silhouette_score(test_codes, test_y))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2000, help="training updates per VAE")
    parser.add_argument("--jitter", type=int, default=None, help="max cell offset from centre")
    parser.add_argument("--global-dim", type=int, default=32)
    parser.add_argument(
        "--finest-latent",
        choices=["full", "half"],
        default="full",
        help="hierarchical models: resolution of the finest latent (the 2D preset uses full)",
    )
    parser.add_argument(
        "--head-upsample", choices=["nearest", "shuffle"], default="nearest", help="with half"
    )
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and batches")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_pop = cell_population(args.train_per_class, SIZE, seed=0, jitter=args.jitter)
    test_pop = cell_population(args.test_per_class, SIZE, seed=1, jitter=args.jitter)
    x_train, x_test = crops_to_input(train_pop.images), crops_to_input(test_pop.images)
    labels = (train_pop.classes, test_pop.classes, test_pop.photons)

    from sklearn.decomposition import PCA

    pca = PCA(n_components=args.global_dim, random_state=0).fit(x_train.flatten(1).numpy())
    results = {
        "pca_raw": scores(
            pca.transform(x_train.flatten(1).numpy()),
            labels[0],
            pca.transform(x_test.flatten(1).numpy()),
            *labels[1:],
        )
    }
    print("pca_raw", results["pca_raw"], flush=True)
    for name in args.models:
        options = BASE | MODELS[name]
        if name == "hier_global":
            options["global_dim"] = args.global_dim
        if options["arch"] == "hierarchical":
            options |= {"finest_latent": args.finest_latent, "head_upsample": args.head_upsample}
        if name == "flat":
            options["latent_dim"] = args.global_dim
        torch.manual_seed(args.seed)
        vae = build_model(**options)
        start = time.process_time()
        train(vae, x_train, args.steps, warmup=args.steps // 4, seed=args.seed)
        cpu = time.process_time() - start
        test_mean, test_logvar = embed(vae, x_test)
        result = scores(embed(vae, x_train)[0], labels[0], test_mean, *labels[1:])
        result |= usage(test_mean, test_logvar) | {"train_cpu_s": round(cpu, 1)}
        results[name] = result
        print(name, result, flush=True)
    settings = vars(args) | {"classes": train_pop.class_names, "photons": [30, 100, 1000]}
    report = {"settings": settings, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
