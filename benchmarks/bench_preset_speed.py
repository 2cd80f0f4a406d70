"""CPU cost of the 2D preset before and after issue 19: one training update and prediction.

For each architecture, at the preset's own widths and scaled to HDN's 567k parameters (as the
CAREamics harness's ``cv_bench.py --size preset567k`` scales it: the preset's levels, widths
times one common factor, 16 latent channels), this measures

- FLOPs of one training update (ELBO forward + backward, batch 16 of 64x64 patches) per patch
  and of the evaluation forward per predicted pixel (``torch.utils.flop_counter``);
- process CPU seconds per training update (batch 16, AdamW, gradient clipping; after warm-up
  updates) and per predicted megapixel (``reconstruct_params`` of 128x128 tiles, batch 4,
  no gradients, channels-last input where the model is).

Process CPU time, not wall time, so the figures hold on a shared machine; with one thread
(``--threads 1``) CPU time is close to what one core needs. The architectures:

- ``old``: the preset before issue 19 (finest latent at full resolution, ``g`` a per-channel
  bias, a spatial group at every scale, contiguous memory);
- ``new``: ``configs/2d_hier_dlogistic.yaml`` as shipped (finest latent at 1/2, sub-pixel head,
  ``g`` generates the top state and modulates every group, no spatial group at the top scale,
  channels-last);
- ``old_567k``, ``new_567k``: both scaled to 567k parameters;
- ``s567k_shuffle``: the harness's non-preset size of that name, a yardstick whose speed
  against HDN was measured (2.04x training, 2.16x prediction).

Run: ``python benchmarks/bench_preset_speed.py [--archs old new old_567k new_567k
s567k_shuffle] [--steps 20] [--tiles 16] [--threads 1] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "2d_hier_dlogistic.yaml"
HDN_PARAMS = 566_817  # CAREamics' hdn_default (the harness's target)
ARCH_KEYS = (
    "widths", "latent_channels", "global_dim", "groups_per_scale", "finest_latent",
    "head_upsample", "head_width", "downsample", "blocks_per_scale", "channels_last",
    "global_decoder", "global_norm", "global_logvar_floor", "global_top",
)  # fmt: skip
#: the 2D preset's architecture before issue 19 (main's configs/2d_hier_dlogistic.yaml)
OLD = {
    "widths": [16, 32, 64],
    "latent_channels": 4,
    "global_dim": 32,
    "groups_per_scale": 1,
    "finest_latent": "full",
    "head_upsample": "shuffle",
    "head_width": 8,
    "blocks_per_scale": 1,
    "global_decoder": "bias",
    "global_top": False,
    "channels_last": False,
}


#: the harness's non-preset ``--size s567k_shuffle`` (no global latent), whose HDN ratios are
#: known (2.04x training, 2.16x prediction): a yardstick for the others' CPU figures
S567K_SHUFFLE = {
    "widths": [72, 244],
    "latent_channels": 16,
    "finest_latent": "half",
    "head_upsample": "shuffle",
    "head_width": 36,
    "channels_last": True,
}


def new_architecture() -> dict:
    """The shipped 2D preset's model options that shape the network."""
    model = yaml.safe_load(PRESET.read_text())["model"]
    return {key: model[key] for key in ARCH_KEYS if model.get(key) is not None}


def build(arch: dict) -> VAEModule:
    """A 2D dlogistic VAEModule on 64x64 patches with the options ``arch``."""
    return VAEModule(
        arch="hierarchical", ndim=2, in_channels=1, patch_size=64, likelihood="dlogistic",
        iwae_samples=0, grid_images=0, **arch,
    )  # fmt: skip


def n_params(module: VAEModule) -> int:
    return sum(p.numel() for p in module.model.parameters())


def scaled_to_hdn(arch: dict) -> dict:
    """``arch`` with its widths (and head) times one factor and 16 latent channels, chosen so
    its parameters are closest to HDN's (the harness's ``preset_at_567k``)."""
    best = None
    for step in range(40, 1200):
        factor = step / 40.0
        widths = [max(4, 4 * round(w * factor / 4)) for w in arch["widths"]]
        cfg = arch | {"widths": widths, "latent_channels": 16}
        if arch.get("head_width"):
            cfg["head_width"] = max(1, round(arch["head_width"] * widths[0] / arch["widths"][0]))
        count = n_params(build(cfg))
        if best is None or abs(count - HDN_PARAMS) < abs(best[1] - HDN_PARAMS):
            best = (cfg, count)
        if count > HDN_PARAMS * 1.05:
            break
    return best[0]


def flops(module: VAEModule) -> tuple[float, float]:
    """FLOPs per training patch (batch 16) and per predicted pixel (4 tiles of 128x128)."""
    vae = module.model
    with FlopCounterMode(display=False) as train:
        elbo_terms(vae, torch.rand(16, 1, 64, 64) * 2 - 1, beta=1.0).loss.backward()
    vae.zero_grad(set_to_none=True)
    vae.eval()
    with FlopCounterMode(display=False) as pred:  # grad on: the tracker trips on no_grad
        vae.reconstruct_params(torch.rand(4, 1, 128, 128) * 2 - 1)
    vae.train()
    return train.get_total_flops() / 16, pred.get_total_flops() / (4 * 128 * 128)


def as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_cpu_s(module: VAEModule, steps: int, warmup: int, cl: bool) -> float:
    """Process CPU seconds per training update of batch 16 (after ``warmup`` updates)."""
    vae, gen = module.model, torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    data = torch.rand(64, 1, 64, 64, generator=gen) * 2 - 1
    vae.train()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.process_time()
        x = as_input(data[torch.randint(len(data), (16,), generator=gen)], cl)
        loss = elbo_terms(vae, x, beta=1.0).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 200.0)
        opt.step()
    return (time.process_time() - start) / steps


def predict_cpu_s_per_mpx(module: VAEModule, tiles: int, cl: bool) -> float:
    """Process CPU seconds per predicted megapixel (128x128 tiles, batch 4, no gradients)."""
    vae = module.model.eval()
    x = as_input(torch.rand(4, 1, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1, cl)
    batches = max(1, tiles // 4)
    with torch.no_grad():
        vae.reconstruct_params(x)  # warm-up
        start = time.process_time()
        for _ in range(batches):
            vae.reconstruct_params(x)
        spent = time.process_time() - start
    return spent / (batches * 4 * 128 * 128 / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training updates")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tiles", type=int, default=16, help="timed 128x128 tiles")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", nargs="+", default=["old", "new", "old_567k", "new_567k"])
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    new = new_architecture()
    archs = {
        "old": lambda: OLD,
        "new": lambda: new,
        "old_567k": lambda: scaled_to_hdn(OLD),
        "new_567k": lambda: scaled_to_hdn(new),
        "s567k_shuffle": lambda: S567K_SHUFFLE,
    }
    unknown = sorted(set(args.archs) - set(archs))
    if unknown:
        parser.error(f"--archs: unknown {unknown}; choose from {sorted(archs)}")
    rows = []
    for name in args.archs:
        arch = archs[name]()
        module = build(arch)
        cl = bool(arch.get("channels_last"))
        train_flop, pred_flop = flops(module)
        row = {
            "arch": name,
            "widths": arch["widths"],
            "head_width": arch.get("head_width") if arch.get("finest_latent") == "half" else None,
            "params": n_params(module),
            "train_gflop_per_patch": round(train_flop / 1e9, 3),
            "predict_kflop_per_px": round(pred_flop / 1e3, 1),
            "train_cpu_s_per_step_b16": round(train_cpu_s(module, args.steps, args.warmup, cl), 4),
            "predict_cpu_s_per_mpx": round(predict_cpu_s_per_mpx(module, args.tiles, cl), 3),
        }
        rows.append(row)
        print(row, flush=True)
    by_name = {row["arch"]: row for row in rows}
    for a, b in (("new", "old"), ("new_567k", "old_567k"), ("new_567k", "s567k_shuffle")):
        if a in by_name and b in by_name:
            num, den = by_name[a], by_name[b]
            print(
                f"{a}/{b}: training CPU "
                f"{num['train_cpu_s_per_step_b16'] / den['train_cpu_s_per_step_b16']:.2f}, "
                f"prediction CPU {num['predict_cpu_s_per_mpx'] / den['predict_cpu_s_per_mpx']:.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
