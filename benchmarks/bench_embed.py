"""Does the cell embedding carry the phenotype? Probes on real nuclei and synthetic phenotypes.

Each task trains the shipped preset's network (``configs/2d_hier_dlogistic.yaml`` or
``3d_hier_dlogistic.yaml``: its model options, batch size, learning rate and warm-ups, for
the preset's ``max_steps`` unless ``--steps``) on random patches of the task's images, with
no labels, seeds 0, 1, 2. Cells are then embedded as ``cellvae embed`` does: the model's
patch centred on each cell, everything but the cell masked (``inference.crops``), the global
latent's posterior mean. With ``--finetune N`` the model is also scored after ``N`` updates
on those crops (``cellvae embed --finetune N``). Three baselines see the same crops:

- ``pca``: PCA of the crops' pixels, as many components as the embedding has numbers;
- ``handmade``: a radially averaged power spectrum (15 log-powers from 0 to Nyquist, mean
  removed) and 5 intensity quantiles (5, 25, 50, 75, 95 %) of each crop: 20 numbers;
- ``supervised``: a small CNN trained *with* the labels (4 convolutions, global pooling;
  flips/turns as augmentation), the ceiling an unsupervised embedding is measured against.

Tasks and scores (mean ± standard error over seeds; the PCA and hand-made baselines are
deterministic):

- ``nuclei2d`` (``nuclei_2d``, 125 nuclei) and ``nuclei3d`` (``nuclei_3d``, 20 nuclei; the
  volume is block-averaged 2x per axis so a nucleus fits the 3D preset's 16x32x32 patch);
  training patches come from the first 3/4 of Y, held-out patches (bits/dim) from the rest;
  every nucleus is embedded:
  5-fold cross-validated ridge R² (features standardised, ridge strength by inner CV) of the
  nucleus' mean intensity, log-area (log-volume) and eccentricity (2D; in 3D the elongation
  ``log(major / minor axis)``), truth from the masks (scikit-image ``regionprops``);
- ``phenotypes`` (:func:`cellvae.data.synthetic.cell_population`: tubular / fragmented /
  networked mitochondria at 30, 100 and 1000 photons, 32x32 crops, cells within ±2 px of the
  centre as embed crops them; 300 training and 100 test cells per class, different seeds):
  k-NN accuracy (k = 5, fitted on the training cells' codes) overall and per photon level,
  and the silhouette of the test codes under the true classes.

For the VAE rows it also reports the embedding's informative units (Gaussian-channel
information > 0.1 nats, :mod:`cellvae.metrics.information`), its mutual information with the
cell (minibatch estimate over the cells, at most log N), the KL per latent group and the test
bits/dim (held-out patches). CPU-heavy: run with ``--threads 1`` at most two at a time.

Run: ``python benchmarks/bench_embed.py nuclei2d [--seeds 0 1 2] [--steps N] [--finetune 600]
[--set global_norm=batch] [--json OUT]``
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from cellvae.data.normalize import Quantizer
from cellvae.inference.crops import cell_crops
from cellvae.inference.embed import measure_cells
from cellvae.metrics.information import INFORMATIVE_NATS, mutual_information, unit_information
from cellvae.metrics.spectra import radial_power_spectrum
from cellvae.models import build_model
from cellvae.training.finetune import augment, finetune
from cellvae.training.objective import elbo_terms
from cellvae.training.schedules import beta_at, lr_warmup_factor

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {2: ROOT / "configs/2d_hier_dlogistic.yaml", 3: ROOT / "configs/3d_hier_dlogistic.yaml"}
#: model options read from a preset's ``model:`` section
MODEL_KEYS = (
    "arch", "likelihood", "widths", "latent_channels", "global_dim", "groups_per_scale",
    "finest_latent", "head_upsample", "head_width", "downsample", "blocks_per_scale",
    "global_decoder", "global_norm", "global_logvar_floor", "global_top", "n_mixtures",
)  # fmt: skip


# --------------------------------------------------------------------------- the preset
@dataclass
class Recipe:
    """A preset's network and training settings."""

    model: dict
    batch: int
    lr: float
    lr_warmup: int
    beta: float
    beta_schedule: str
    beta_warmup: int
    steps: int
    free_bits: float = 0.0


def read_preset(path: Path, overrides: dict) -> Recipe:
    """The preset's model options (``overrides`` win) and training settings."""
    config = yaml.safe_load(path.read_text())
    model, data = config["model"], config["data"]
    options = {k: model[k] for k in MODEL_KEYS if k in model} | overrides
    return Recipe(
        options | {"bits": data.get("bits", 8), "in_channels": 1},
        int(data.get("batch_size", 8)),
        float(model.get("lr", 1e-3)),
        int(model.get("lr_warmup_steps", 50)),
        float(model.get("beta", 1.0)),
        model.get("beta_schedule", "constant"),
        int(model.get("beta_warmup_steps", 0)),
        int(config["trainer"]["max_steps"]),
        float(model.get("free_bits", 0.0) or 0.0),
    )


def train_preset(
    recipe: Recipe,
    patch: tuple[int, ...],
    draw: Callable,
    steps: int | list[int],
    seed: int,
    on_stop: Callable | None = None,
) -> torch.nn.Module:
    """Train the preset's network as ``cellvae fit`` does (AdamW, learning-rate and KL
    warm-ups, free bits, gradient norm clipped at 200) on batches ``draw(n, generator)``.
    ``steps`` may be a list of stops; ``on_stop(step, vae)`` (eval mode) is called at each."""
    torch.manual_seed(seed)
    vae = build_model(ndim=len(patch), patch_size=patch, **recipe.model)
    stops = sorted(steps) if isinstance(steps, list | tuple) else [steps]
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    vae.train()
    for step in range(stops[-1]):
        if on_stop is not None and step in stops:
            on_stop(step, vae.eval())
            vae.train()
        for group in opt.param_groups:
            group["lr"] = recipe.lr * lr_warmup_factor(step, recipe.lr_warmup)
        beta = beta_at(step, recipe.beta_schedule, recipe.beta, recipe.beta_warmup)
        loss = elbo_terms(vae, draw(recipe.batch, gen), beta, recipe.free_bits).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 200.0)
        opt.step()
    if on_stop is not None:
        on_stop(stops[-1], vae.eval())
    return vae.eval()


# --------------------------------------------------------------------------- features
@torch.no_grad()
def embed(vae, x: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances ``(N, D)`` of the global latent."""
    vae.eval()
    parts = [vae.embed(x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@torch.no_grad()
def describe(vae, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    """The cell description ``cellvae embed`` writes, ``(N, D + K)``: the global posterior
    mean, then the local latents' summary (``VAE.local_summary``)."""
    mean = embed(vae, x, batch)[0]
    local = torch.cat([vae.local_summary(x[i : i + batch]) for i in range(0, len(x), batch)])
    return torch.cat([mean, local], 1).numpy()


def handmade(crops: np.ndarray) -> np.ndarray:
    """15 log radial powers (equal bins from 0 to Nyquist, DC left out; fewer when the crop
    has fewer rings) + 5 intensity quantiles, per crop of ``(N, 1, *S)``."""
    rows = []
    for crop in crops[:, 0]:
        freqs, power = radial_power_spectrum(crop)
        n = min(15, len(freqs) - 1)
        bins = np.minimum((freqs[1:] / 0.5 * n).astype(int), n - 1)
        spectrum = np.bincount(bins, weights=power[1:], minlength=n) / np.maximum(
            np.bincount(bins, minlength=n), 1
        )
        quantiles = np.percentile(crop, [5, 25, 50, 75, 95])
        rows.append(np.concatenate([np.log(spectrum + 1e-12), quantiles]))
    return np.asarray(rows)


def pca_codes(fit: np.ndarray, *apply: np.ndarray, dims: int) -> list[np.ndarray]:
    """PCA of flattened crops fitted on ``fit``, applied to ``fit`` and each of ``apply``."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(dims, len(fit) - 1), random_state=0)
    pca.fit(fit.reshape(len(fit), -1))
    return [pca.transform(a.reshape(len(a), -1)) for a in (fit, *apply)]


class SmallCNN(torch.nn.Module):
    """The supervised ceiling: 4 convolutions (16-32-64-64 channels), 2 poolings, global mean."""

    def __init__(self, ndim: int, outputs: int):
        super().__init__()
        conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
        pool = torch.nn.AvgPool2d(2) if ndim == 2 else torch.nn.AvgPool3d(2)
        act = torch.nn.GELU()
        self.body = torch.nn.Sequential(
            conv(1, 16, 3, padding=1), act, pool, conv(16, 32, 3, padding=1), act, pool,
            conv(32, 64, 3, padding=1), act, conv(64, 64, 3, padding=1), act,
        )  # fmt: skip
        self.head = torch.nn.Linear(64, outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's output pooled over space, ``(B, 64)``."""
        return self.body(x).flatten(2).mean(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, *S) -> (B, outputs)``."""
        return self.head(self.features(x))


def train_supervised(
    x: torch.Tensor, y: torch.Tensor, classify: bool, seed: int, steps: int = 600
) -> SmallCNN:
    """Fit :class:`SmallCNN` to ``y`` (class ids, or standardised targets ``(N, k)``)."""
    torch.manual_seed(seed)
    outputs = int(y.max()) + 1 if classify else y.shape[1]
    net = SmallCNN(x.ndim - 2, outputs)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.functional.cross_entropy if classify else torch.nn.functional.mse_loss
    for _ in range(steps):
        index = torch.randint(len(x), (32,), generator=gen)
        loss = loss_fn(net(augment(x[index], gen)), y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


#: VAE rows: the table's description (global code + local summary) and the global code alone
VAE_ROWS = ("vae", "vae_g", "vae_finetuned", "vae_finetuned_g", "untrained")


def untrained(recipe: Recipe, patch: tuple[int, ...], seed: int) -> torch.nn.Module:
    """The preset's network at its seeded initialisation: a random-features baseline that
    says how much of a probe's score training earned."""
    torch.manual_seed(seed)
    return build_model(ndim=len(patch), patch_size=patch, **recipe.model).eval()


def description_size(recipe: Recipe, patch: tuple[int, ...]) -> int:
    """Numbers per cell in the VAE's description (the PCA baseline gets as many)."""
    vae = build_model(ndim=len(patch), patch_size=patch, **recipe.model)
    return int(describe(vae, torch.zeros(1, 1, *patch)).shape[1])


# --------------------------------------------------------------------------- scores
def ridge_r2(codes: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, float]:
    """5-fold cross-validated R² of a ridge regression from ``codes`` to each target."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for name, y in targets.items():
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
        pred = cross_val_predict(model, codes, y, cv=KFold(5, shuffle=True, random_state=0))
        out[f"r2_{name}"] = r2(pred, y)
    return out


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``."""
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def supervised_r2(
    crops: torch.Tensor, targets: dict[str, np.ndarray], seed: int, steps: int = 600
) -> dict:
    """Out-of-fold R² of :class:`SmallCNN` regressing all targets at once (5 folds)."""
    from sklearn.model_selection import KFold

    y = np.stack(list(targets.values()), 1)
    mu, sd = y.mean(0), y.std(0)
    pred = np.zeros_like(y)
    for train, test in KFold(5, shuffle=True, random_state=0).split(y):
        target = torch.from_numpy(((y[train] - mu) / sd).astype(np.float32))
        net = train_supervised(crops[train], target, False, seed, steps)
        with torch.no_grad():
            pred[test] = net(crops[test]).numpy() * sd + mu
    return {f"r2_{k}": r2(pred[:, i], y[:, i]) for i, k in enumerate(targets)}


def standardised(fit: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fit`` and ``held`` with each feature scaled to unit variance on ``fit``."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(fit)
    return scaler.transform(fit), scaler.transform(held)


def knn_predict(fit: np.ndarray, y_fit: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The benchmarks' k-NN (5 neighbours) class of each ``held`` row."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(5).fit(fit, y_fit).predict(held)


def classification(
    train_codes, train_y, test_codes, test_y, photons, standardise: bool = True
) -> dict[str, float]:
    """k-NN accuracy (overall, per photon level) and silhouette of the test codes.

    ``standardise`` scales each feature to unit variance on the training cells first (as
    ``cellvae embed`` does for the description its maps are made from), so no feature
    dominates by its units; PCA codes are scored as they are (whitening them would give
    their noisiest components as much weight as the first)."""
    from sklearn.metrics import silhouette_score

    if standardise:
        train_codes, test_codes = standardised(train_codes, test_codes)
    hit = knn_predict(train_codes, train_y, test_codes) == test_y
    out = {"knn": float(hit.mean())}
    out |= {f"knn_{p:g}": float(hit[photons == p].mean()) for p in np.unique(photons)}
    out["silhouette"] = float(silhouette_score(test_codes, test_y))
    return out


def latent_usage(vae, mean, logvar, test: torch.Tensor) -> dict:
    """Informative units, mutual information and the KL per group / bits per dim on ``test``."""
    info = unit_information(mean, logvar)
    with torch.no_grad():
        terms = elbo_terms(vae, test, 1.0)
    return {
        "informative_units": int((info > INFORMATIVE_NATS).sum()),
        "information_nats": float(info.sum()),
        "mi_nats": mutual_information(mean, logvar, 4, torch.Generator().manual_seed(0)),
        "mi_cap_nats": math.log(len(mean)),
        "kl_nats": {n: round(float(k.mean()), 2) for n, k in zip(vae.group_names, terms.kl_groups)},
        "test_bits_per_dim": float(terms.per_dim(vae.likelihood)["bits_per_dim"]),
    }


# --------------------------------------------------------------------------- tasks
@dataclass
class CellTask:
    """What a probe needs: crops of cells (model inputs) and the data to train on."""

    ndim: int
    patch: tuple[int, ...]
    crops: torch.Tensor  # (N, 1, *patch) masked, centred
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    image: torch.Tensor | None = None  # (1, *S) the image (model inputs)
    test: torch.Tensor | None = None  # held-out patches
    train_span: tuple[int, int, int] | None = None  # (axis, lo, hi) of the training part


def _random_patches(image: torch.Tensor, patch, n: int, gen, span=None) -> torch.Tensor:
    """``n`` random ``patch`` crops of ``image`` ``(1, *S)``; ``span = (axis, lo, hi)`` keeps
    them within ``[lo, hi)`` along that spatial axis."""
    out = []
    for _ in range(n):
        start = []
        for axis, (s, p) in enumerate(zip(image.shape[1:], patch)):
            lo, hi = (span[1], span[2]) if span and span[0] == axis else (0, s)
            start.append(int(torch.randint(lo, hi - p + 1, (1,), generator=gen)))
        out.append(image[(slice(None), *(slice(a, a + p) for a, p in zip(start, patch)))])
    return torch.stack(out)


def nuclei_task(ndim: int, neighbours: str = "masked") -> CellTask:
    """Centred masked crops and mask-derived truth of the bundled nuclei (2D or 3D)."""
    from skimage.measure import regionprops

    from cellvae.data.samples import nuclei_2d, nuclei_3d

    image, labels = nuclei_2d() if ndim == 2 else nuclei_3d()
    image, labels = np.asarray(image, np.float32), np.asarray(labels)
    if ndim == 3:  # 2x block average (a nucleus, ~30x50x50 voxels, fits 16x32x32)
        cut = tuple(s - s % 2 for s in image.shape)
        image = image[: cut[0], : cut[1], : cut[2]]
        image = image.reshape(cut[0] // 2, 2, cut[1] // 2, 2, cut[2] // 2, 2).mean((1, 3, 5))
        labels = labels[: cut[0] : 2, : cut[1] : 2, : cut[2] : 2]
    names = "yx" if ndim == 2 else "zyx"
    patch = (64, 64) if ndim == 2 else (16, 32, 32)
    table = measure_cells(labels, names)
    props = {p.label: p for p in regionprops(labels, intensity_image=image)}
    targets = {
        "intensity": np.array([props[i].intensity_mean for i in table["label"]]),
        "log_area": np.log(table["size_voxels"].to_numpy(np.float64)),
    }
    if ndim == 2:
        targets["eccentricity"] = np.array([props[i].eccentricity for i in table["label"]])
    else:
        eig = np.array([props[i].inertia_tensor_eigvals for i in table["label"]])
        targets["elongation"] = 0.5 * np.log(eig.max(1) / np.maximum(eig.min(1), 1e-9))
    lo, hi = np.percentile(image, [0.1, 99.9])
    q = Quantizer(float(lo), float(hi), 8)
    crops = cell_crops(image[None], labels, table, names, patch, neighbours)
    x = torch.from_numpy(q.quantize(image)[None].astype(np.float32))
    axis = ndim - 2  # Y: training patches from its first 3/4, held-out ones from the rest
    cut = x.shape[axis + 1] * 3 // 4
    gen = torch.Generator().manual_seed(1)
    test = _random_patches(x, patch, 64, gen, (axis, cut, x.shape[axis + 1]))
    crops = torch.from_numpy(q.quantize(crops).astype(np.float32))
    return CellTask(ndim, patch, crops, targets, x, test, (axis, 0, cut))


def run_nuclei(args, recipe: Recipe) -> dict:
    task = nuclei_task(args.ndim, "kept" if args.keep_neighbours else "masked")
    flat = task.crops.numpy()
    dims = description_size(recipe, task.patch)
    rows = {
        "pca": ridge_r2(pca_codes(flat, dims=dims)[0], task.targets),
        "handmade": ridge_r2(handmade(flat), task.targets),
    }
    for name in ("pca", "handmade"):
        print(name, rows[name], flush=True)
    results: dict[str, list] = {k: [] for k in (*VAE_ROWS, "supervised")}
    steps = args.steps or recipe.steps

    def draw(n, gen):
        return _random_patches(task.image, task.patch, n, gen, task.train_span)

    for seed in args.seeds:
        start = time.process_time()
        vae = train_preset(recipe, task.patch, draw, steps, seed)
        cpu = time.process_time() - start
        runs = [("vae", vae)]
        if args.finetune:
            tuned = finetune(copy.deepcopy(vae), task.crops, args.finetune, seed=seed)
            runs.append(("vae_finetuned", tuned))
        for name, model in runs:
            mean, logvar = embed(model, task.crops)
            usage = latent_usage(model, mean, logvar, task.test)
            for suffix, codes in (("_g", mean.numpy()), ("", describe(model, task.crops))):
                row = ridge_r2(codes, task.targets) | {"seed": seed, "train_cpu_s": cpu}
                results[name + suffix].append(row | usage)
                print(name + suffix, row, flush=True)
        row = ridge_r2(describe(untrained(recipe, task.patch, seed), task.crops), task.targets)
        results["untrained"].append(row | {"seed": seed})
        print("untrained", row, flush=True)
        if not args.no_supervised:
            row = supervised_r2(task.crops, task.targets, seed, args.supervised_steps)
            row["seed"] = seed
            results["supervised"].append(row)
            print("supervised", row, flush=True)
    return rows | {k: v for k, v in results.items() if v}


def phenotype_crops(train_per_class: int = 300, test_per_class: int = 100, size: int = 32):
    """The phenotype set's training and test populations (cells within ±2 px of the crop
    centre, as ``cellvae embed`` crops them) and their crops as model inputs ``(N, 1, S, S)``."""
    from cellvae.data.synthetic import cell_population

    train_pop = cell_population(train_per_class, size, seed=0, jitter=2)
    test_pop = cell_population(test_per_class, size, seed=1, jitter=2)
    q = Quantizer(0.0, 255.0, 8)
    x_train, x_test = (
        torch.from_numpy(q.quantize(p.images.astype(np.float32))[:, None].astype(np.float32))
        for p in (train_pop, test_pop)
    )
    return train_pop, test_pop, x_train, x_test


def run_phenotypes(args, recipe: Recipe) -> dict:
    size = 32
    train_pop, test_pop, x_train, x_test = phenotype_crops(
        args.train_per_class, args.test_per_class, size
    )
    labels = (train_pop.classes, test_pop.classes, test_pop.photons)
    flat_train, flat_test = x_train.numpy(), x_test.numpy()
    dims = description_size(recipe, (size, size))
    rows = {
        "pca": classification(
            *_pair(pca_codes(flat_train, flat_test, dims=dims), labels), standardise=False
        ),
        "handmade": classification(*_pair([handmade(flat_train), handmade(flat_test)], labels)),
    }
    for name in ("pca", "handmade"):
        print(name, rows[name], flush=True)
    results: dict[str, list] = {k: [] for k in (*VAE_ROWS, "supervised")}
    steps = args.steps or recipe.steps

    def draw(n, gen):
        return x_train[torch.randint(len(x_train), (n,), generator=gen)]

    for seed in args.seeds:
        start = time.process_time()
        vae = train_preset(recipe, (size, size), draw, steps, seed)
        cpu = time.process_time() - start
        runs = [("vae", vae)]
        if args.finetune:  # the crops are cell-centred already: more of the same training
            tuned = finetune(copy.deepcopy(vae), x_train, args.finetune, seed=seed)
            runs.append(("vae_finetuned", tuned))
        for name, model in runs:
            train_mean = embed(model, x_train)[0]
            mean, logvar = embed(model, x_test)
            usage = latent_usage(model, mean, logvar, x_test[:256])
            pairs = (
                ("_g", train_mean.numpy(), mean.numpy()),
                ("", describe(model, x_train), describe(model, x_test)),
            )
            for suffix, fit_codes, test_codes in pairs:
                row = classification(fit_codes, labels[0], test_codes, *labels[1:])
                row |= {"seed": seed, "train_cpu_s": cpu}
                results[name + suffix].append(row | usage)
                print(name + suffix, row, flush=True)
        init = untrained(recipe, (size, size), seed)
        codes = describe(init, x_train), describe(init, x_test)
        row = classification(codes[0], labels[0], codes[1], *labels[1:])
        results["untrained"].append(row | {"seed": seed})
        print("untrained", row, flush=True)
        if not args.no_supervised:
            sup_steps = 10 * args.supervised_steps
            net = train_supervised(x_train, torch.from_numpy(labels[0]), True, seed, sup_steps)
            with torch.no_grad():
                hit = net(x_test).argmax(1).numpy() == labels[1]
            row = {"knn": float(hit.mean()), "seed": seed}  # the classifier's own accuracy
            row |= {f"knn_{p:g}": float(hit[labels[2] == p].mean()) for p in (30, 100, 1000)}
            results["supervised"].append(row)
            print("supervised", row, flush=True)
    return rows | {k: v for k, v in results.items() if v}


def _pair(codes: list[np.ndarray], labels) -> tuple:
    return codes[0], labels[0], codes[1], labels[1], labels[2]


def summary(results: dict) -> dict[str, dict[str, str]]:
    """Mean ± standard error over seeds of every number of every row."""
    out = {}
    for name, rows in results.items():
        if isinstance(rows, dict):
            out[name] = {k: f"{v:.3f}" for k, v in rows.items()}
            continue
        keys = [k for k, v in rows[0].items() if isinstance(v, int | float) and k != "seed"]
        out[name] = {}
        for k in keys:
            values = np.array([r[k] for r in rows], float)
            se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
            out[name][k] = f"{values.mean():.3f} ± {se:.3f}"
    return out


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["nuclei2d", "nuclei3d", "phenotypes"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="training updates (default: the preset's)")
    parser.add_argument("--finetune", type=int, default=0, help="also score after N updates")
    parser.add_argument("--preset", help="preset YAML (default: the 2D or 3D shipped one)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="model option overrides"
    )
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--no-supervised", action="store_true", help="skip the CNN ceiling")
    parser.add_argument(
        "--keep-neighbours", action="store_true", help="nuclei: crops as embed --keep-neighbours"
    )
    parser.add_argument(
        "--supervised-steps", type=int, default=600, help="CNN updates per fold (x10 phenotypes)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.ndim = 3 if args.task == "nuclei3d" else 2
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    recipe = read_preset(Path(args.preset or PRESETS[args.ndim]), overrides)
    run = run_phenotypes if args.task == "phenotypes" else run_nuclei
    results = run(args, recipe)
    report(results, args, recipe)


def report(results: dict, args, recipe: Recipe, table: dict | None = None) -> None:
    """Print the mean ± SE table of ``results`` and, with ``args.json``, write the settings,
    the raw rows and the table there."""
    table = table or summary(results)
    for name, row in table.items():
        print(f"{name:>14}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if args.json:
        settings = vars(args) | {"recipe": recipe.__dict__}
        Path(args.json).write_text(
            json.dumps({"settings": settings, "results": results, "summary": table}, indent=2)
        )


if __name__ == "__main__":
    main()
