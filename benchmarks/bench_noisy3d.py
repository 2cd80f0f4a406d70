"""How long must the 3D preset train on a noisy volume (EM / cryo-ET-like) before its
latents carry the structure? A synthetic volume with a known clean signal answers it.

The volume is :func:`cellvae.data.synthetic.mitochondria` at cryo-ET-like noise (20 photons
at the brightest point over a background of 20 per voxel: the noisy volume correlates 0.19
with its clean signal, which fills 2 % of the voxels), 64x128x128, PSF twice as long in Z; the top
3/4 of Z trains, the bottom 1/4 (64 blocks) tests. The 3D preset (``configs/3d_hier_dlogistic
.yaml``, its recipe as in ``bench_embed.py``; ``--set``/``--free-bits`` change it) trains with
seeds 0 and 1; at each stop it reports on the held-out blocks:

- ``corr_clean``: correlation of the reconstruction (likelihood mean at the posterior means)
  with the noise-free signal; ``corr_noisy_input`` is the noisy input's own (a constant
  reconstruction, the collapse the issue met on a tomogram, has none);
- the informative units per latent group (Gaussian-channel information > 0.1 nats per
  image, :func:`cellvae.metrics.information.group_information`), summed over groups, the
  information and the KL per group;
- the held-out bits/dim.

Run: ``python benchmarks/bench_noisy3d.py [--stops 300 1000 2000 4000] [--seeds 0 1]
[--photons 20] [--free-bits 0] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from bench_embed import PRESETS, _value, read_preset, train_preset

from cellvae.data.normalize import Quantizer
from cellvae.data.synthetic import mitochondria
from cellvae.metrics.information import INFORMATIVE_NATS, group_information
from cellvae.training.objective import elbo_terms

PATCH = (16, 32, 32)


def blocks(volume: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random :data:`PATCH` blocks of ``volume``, ``(n, 1, *PATCH)``."""
    rng = np.random.default_rng(seed)
    starts = [rng.integers(0, s - p + 1, n) for s, p in zip(volume.shape, PATCH)]
    out = [volume[a : a + 16, b : b + 32, c : c + 32] for a, b, c in zip(*starts)]
    return np.stack(out)[:, None]


@torch.no_grad()
def score(vae, x: torch.Tensor, clean: np.ndarray) -> dict:
    """Reconstruction vs. the clean signal, information per group, bits/dim of ``x``."""
    recon = vae.likelihood.mean(vae.reconstruct_params(x)).numpy().ravel()
    terms = elbo_terms(vae, x, 1.0)
    posts = terms.output.posteriors
    informative, nats = {}, {}
    for name, post in zip(vae.group_names, posts):
        info = group_information(post.mean, post.logvar)
        informative[name] = int((info > INFORMATIVE_NATS).sum())
        nats[name] = round(float(info.sum()), 2)
    corr = float(np.corrcoef(recon, clean.ravel())[0, 1]) if recon.std() > 0 else 0.0
    return {
        "corr_clean": corr,
        "informative_units": sum(informative.values()),
        "informative_per_group": informative,
        "information_nats": nats,
        "kl_nats": {n: round(float(k.mean()), 1) for n, k in zip(vae.group_names, terms.kl_groups)},
        "test_bits_per_dim": float(terms.per_dim(vae.likelihood)["bits_per_dim"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, nargs="+", default=[300, 1000, 2000, 4000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--photons", type=float, default=20.0)
    parser.add_argument("--free-bits", type=float, help="free nats per group (default: preset)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    recipe = read_preset(PRESETS[3], overrides)
    if args.free_bits is not None:
        recipe.free_bits = args.free_bits
    volume = mitochondria(
        (64, 128, 128), seed=0, n_tubules=40, psf_sigma=(2.0, 1.0, 1.0),
        photons=args.photons, background=20.0, read_noise=1.0,
    )  # fmt: skip
    image = volume.image.astype(np.float32)
    lo, hi = np.percentile(image, [0.1, 99.9])
    q = Quantizer(float(lo), float(hi), 8)
    x = torch.from_numpy(q.quantize(image).astype(np.float32))
    train, test = x[:48], x[48:]
    test_x = torch.from_numpy(blocks(test.numpy(), 64, 1))
    clean = blocks(q.quantize(volume.clean.astype(np.float32))[48:], 64, 1)
    noisy_corr = float(np.corrcoef(test_x.numpy().ravel(), clean.ravel())[0, 1])
    print(f"noisy input vs clean: correlation {noisy_corr:.3f}", flush=True)

    def draw(n, gen):
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        return torch.from_numpy(blocks(train.numpy(), n, seed))

    rows = []
    for seed in args.seeds:

        def on_stop(step, vae, seed=seed):
            row = {"seed": seed, "step": step} | score(vae, test_x, clean)
            rows.append(row)
            print(row, flush=True)

        train_preset(recipe, PATCH, draw, args.stops, seed, on_stop)
    if args.json:
        settings = vars(args) | {"recipe": recipe.__dict__, "corr_noisy_input": noisy_corr}
        Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
