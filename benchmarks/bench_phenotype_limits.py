"""How far does any representation learnt without labels get on the phenotype set?

``bench_embed.py phenotypes`` scores the VAE's description at k-NN ≈ 0.66 against a target of
0.85 (≥ 0.95 at 1000 photons). This asks whether the gap is the VAE's or the task's. On the
same crops (:func:`cellvae.data.synthetic.cell_population`, 300 training / 100 test cells per
class, cell-centred ±2 px) and per seed it scores, by k-NN (as ``bench_embed``) and by a
linear probe (logistic regression on standardised features):

- ``handmade``: radial power spectrum + intensity quantiles (no training);
- ``intensity``: two numbers, the crop's mean and 90th percentile (no training);
- ``vae``: the description ``cellvae embed`` writes, after the preset's training;
- ``vae_d8``: the same, averaged over the 8 flips/quarter turns of each crop (orientation
  invariant by construction);
- ``vae_aug``: the preset trained on randomly flipped/turned crops (``augment``);
- ``contrastive``: :class:`~bench_embed.SmallCNN`'s body trained without labels by SimCLR
  (two random symmetries and ±3 px shifts of each crop must find each other among the
  batch), features = its pooled output;
- ``supervised``: the same network trained on the labels (the ceiling; its own accuracy).

It also prints the k-NN confusion matrix (rows: true tubular / fragmented / networked), which
shows where the unsupervised spaces fail.

Run: ``python benchmarks/bench_phenotype_limits.py [--seeds 0 1 2] [--rows ...] [--json out.json]``
(``--rows`` with no names runs only the untrained baselines)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from bench_embed import (
    PRESETS,
    SmallCNN,
    describe,
    handmade,
    knn_predict,
    phenotype_crops,
    read_preset,
    report,
    standardised,
    summary,
    train_preset,
    train_supervised,
)

from cellvae.training.finetune import augment

LEVELS = (30.0, 100.0, 1000.0)
ROWS = ("vae", "vae_d8", "vae_aug", "contrastive", "supervised")  # handmade always runs


def scores(fit: np.ndarray, held: np.ndarray, y_fit, y_held, photons) -> dict:
    """k-NN (5 neighbours) and linear-probe accuracy, overall and per photon level, on
    features standardised on the training cells; plus the k-NN confusion matrix."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix

    fit, held = standardised(fit, held)
    linear = LogisticRegression(max_iter=5000).fit(fit, y_fit).predict(held)
    out: dict = {}
    for name, pred in (("knn", knn_predict(fit, y_fit, held)), ("linear", linear)):
        hit = pred == y_held
        out[name] = float(hit.mean())
        out |= {f"{name}_{p:g}": float(hit[photons == p].mean()) for p in LEVELS}
        if name == "knn":
            out["knn_confusion"] = confusion_matrix(y_held, pred).tolist()
    return out


def intensity(crops: np.ndarray) -> np.ndarray:
    """Two numbers per crop ``(N, 1, *S)``: its mean and 90th percentile (how much
    mitochondrial material, how bright): the floor any description should clear."""
    flat = crops.reshape(len(crops), -1)
    return np.stack([flat.mean(1), np.percentile(flat, 90, axis=1)], 1)


def shifted(x: torch.Tensor, gen: torch.Generator, most: int = 3) -> torch.Tensor:
    """A random symmetry and a random circular shift of up to ``most`` px, per chunk of 16."""
    parts = []
    for chunk in x.split(16):
        dy, dx = (int(v) for v in torch.randint(-most, most + 1, (2,), generator=gen))
        parts.append(torch.roll(augment(chunk, gen), (dy, dx), (-2, -1)))
    return torch.cat(parts)


def train_contrastive(
    x: torch.Tensor, seed: int, steps: int, batch: int = 128, tau: float = 0.2
) -> SmallCNN:
    """SimCLR on :class:`SmallCNN`'s body (64 pooled features) with a 2-layer projection."""
    torch.manual_seed(seed)
    net = SmallCNN(2, 64)
    project = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))
    params = [*net.body.parameters(), *project.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    target = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)])
    for _ in range(steps):
        crops = x[torch.randint(len(x), (batch,), generator=gen)]
        views = torch.cat([shifted(crops, gen), shifted(crops, gen)])
        z = F.normalize(project(net.features(views)), dim=1)
        sim = (z @ z.T / tau).fill_diagonal_(-1e9)
        loss = F.cross_entropy(sim, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def pooled(net: SmallCNN, x: torch.Tensor) -> np.ndarray:
    """The network's pooled body features ``(N, 64)``."""
    return torch.cat([net.features(c) for c in x.split(256)]).numpy()


def symmetries(x: torch.Tensor):
    """The 8 flips/quarter turns of ``(N, C, Y, X)``."""
    for flip in (False, True):
        for turns in range(4):
            yield torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="VAE updates (default: the preset's)")
    parser.add_argument("--contrastive-steps", type=int, default=1500)
    parser.add_argument("--supervised-steps", type=int, default=6000)
    parser.add_argument(
        "--rows", nargs="*", choices=ROWS, default=list(ROWS), help="trained rows to run"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = read_preset(PRESETS[2], {})
    train, test, x_train, x_test = phenotype_crops()
    labels = (train.classes, test.classes, test.photons)
    results: dict[str, list] = {}

    def record(name: str, row: dict, seed: int) -> None:
        results.setdefault(name, []).append(row | {"seed": seed})
        print(seed, name, {k: v if isinstance(v, list) else round(v, 3) for k, v in row.items()})

    def draw(n, gen):
        return x_train[torch.randint(len(x_train), (n,), generator=gen)]

    def draw_turned(n, gen):
        return augment(draw(n, gen), gen)

    for name, features in (("handmade", handmade), ("intensity", intensity)):
        record(name, scores(features(x_train.numpy()), features(x_test.numpy()), *labels), -1)
    steps = args.steps or recipe.steps
    rows = set(args.rows)
    for seed in args.seeds:
        if rows & {"vae", "vae_d8"}:
            vae = train_preset(recipe, (32, 32), draw, steps, seed)
            codes = describe(vae, x_train), describe(vae, x_test)
            record("vae", scores(*codes, *labels), seed)
            d8 = [np.mean([describe(vae, v) for v in symmetries(x)], 0) for x in (x_train, x_test)]
            record("vae_d8", scores(*d8, *labels), seed)
        if "vae_aug" in rows:
            turned = train_preset(recipe, (32, 32), draw_turned, steps, seed)
            aug = describe(turned, x_train), describe(turned, x_test)
            record("vae_aug", scores(*aug, *labels), seed)
        if "contrastive" in rows:
            net = train_contrastive(x_train, seed, args.contrastive_steps)
            codes = pooled(net, x_train), pooled(net, x_test)
            record("contrastive", scores(*codes, *labels), seed)
        if "supervised" in rows:
            y = torch.from_numpy(labels[0])
            sup = train_supervised(x_train, y, True, seed, args.supervised_steps)
            with torch.no_grad():
                hit = sup(x_test).argmax(1).numpy() == labels[1]
            row = {"accuracy": float(hit.mean())}
            row |= {f"accuracy_{p:g}": float(hit[labels[2] == p].mean()) for p in LEVELS}
            record("supervised", row, seed)
    flat = {k: [{a: b for a, b in r.items() if not isinstance(b, list)} for r in v]
            for k, v in results.items()}  # fmt: skip
    for name in ("handmade", "intensity"):  # deterministic: one row, no error bar
        flat[name] = {k: v for k, v in flat[name][0].items() if k != "seed"}
    report(results, args, recipe, summary(flat))  # the raw rows keep the confusion matrices


if __name__ == "__main__":
    main()
