"""Training throughput of ``VAEModule`` under Lightning vs. a bare PyTorch loop, and FLOP use.

Both loops train the same model on the same in-memory batches with the same objective, AdamW,
gradient clipping and finiteness checks; the difference is Lightning's overhead (target
≤ 5 %). The model's achieved FLOP/s (``torch.utils.flop_counter`` on one update) is compared
with the machine's measured float32 matmul FLOP/s.

Run: ``python benchmarks/bench_train.py [--arch hierarchical] [--steps 20] [--threads 2]``;
the CAREamics-matched size: ``--widths 72 256 --latent-channels 16 --finest-latent half
--batch 16``.
"""

from __future__ import annotations

import argparse
import math
import time

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms
from cellvae.training.schedules import lr_warmup_factor

PRESETS = {
    "hierarchical": {"arch": "hierarchical", "likelihood": "dlogistic", "widths": [16, 32, 64]},
    "flat": {"arch": "flat", "likelihood": "gaussian", "widths": [16, 32, 64, 64]},
}


def _batches(n: int, batch: int, patch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n * batch, 1, patch, patch), generator=gen).float() / 127.5 - 1


class _Clock(L.Callback):
    """Wall time from the start of batch ``warmup`` to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = math.nan
        self.stop = math.nan

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        self.stop = time.perf_counter()


def lightning_rate(kwargs: dict, data: torch.Tensor, batch: int, steps: int, warmup: int) -> float:
    """Patches per second of ``Trainer.fit`` over ``steps`` updates after ``warmup``."""
    torch.manual_seed(0)
    module = VAEModule(**kwargs)
    clock = _Clock(warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(module, DataLoader(data, batch_size=batch))
    return steps * batch / (clock.stop - clock.start)


def bare_rate(kwargs: dict, data: torch.Tensor, batch: int, steps: int, warmup: int) -> float:
    """Patches per second of a plain PyTorch loop doing the same update."""
    torch.manual_seed(0)
    module = VAEModule(**kwargs)
    model, hp = module.model, module.hparams  # the settings the Lightning loop uses
    opt = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_warmup_factor(s, hp.lr_warmup_steps)
    )
    start = math.nan
    for i, x in enumerate(DataLoader(data, batch_size=batch)):
        if i == warmup:
            start = time.perf_counter()
        if i == warmup + steps:
            break
        terms = elbo_terms(model, x, beta=1.0)
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
        if bool(torch.isfinite(terms.loss)) and bool(torch.isfinite(norm)):
            opt.step()
            sched.step()
    return steps * batch / (time.perf_counter() - start)


def update_flops(kwargs: dict, x: torch.Tensor) -> int:
    """FLOPs of one forward + backward pass on batch ``x``."""
    model = VAEModule(**kwargs).model
    with FlopCounterMode(display=False) as counter:
        elbo_terms(model, x, beta=1.0).loss.backward()
    return counter.get_total_flops()


def matmul_flops_per_s(n: int = 1024, repeats: int = 10) -> float:
    """Measured float32 matmul FLOP/s of this machine (``2 n³`` per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(PRESETS), default="hierarchical")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop")
    parser.add_argument("--widths", type=int, nargs="+", help="override the preset's widths")
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--finest-latent", choices=["full", "half"], default="full")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kwargs = {
        **PRESETS[args.arch],
        "patch_size": args.patch,
        "latent_channels": args.latent_channels,
        "latent_dim": 32,
        "lr": 1e-3,
        "lr_warmup_steps": 20,
        "iwae_samples": 0,
        "grid_images": 0,
    }
    if args.widths:
        kwargs["widths"] = args.widths
    if args.arch == "hierarchical":
        kwargs["finest_latent"] = args.finest_latent
    if args.channels_last:
        kwargs["channels_last"] = True
    data = _batches(args.warmup + args.steps + 1, args.batch, args.patch)
    bare, lit = [], []
    for _ in range(args.repeats):  # alternate to share out the noise of a busy machine
        bare.append(bare_rate(kwargs, data, args.batch, args.steps, args.warmup))
        lit.append(lightning_rate(kwargs, data, args.batch, args.steps, args.warmup))
    bare_best, lit_best = max(bare), max(lit)
    flops = update_flops(kwargs, data[: args.batch])
    peak = matmul_flops_per_s()
    achieved = flops * bare_best / args.batch
    print(
        f"model            {args.arch} {kwargs['widths']}, batch {args.batch}, "
        f"patch {args.patch}², "
        f"{args.threads} threads, device cpu (no GPU lent)"
    )
    print(f"bare PyTorch     {bare_best:8.1f} patches/s   (runs: {[round(r, 1) for r in bare]})")
    print(f"Lightning        {lit_best:8.1f} patches/s   (runs: {[round(r, 1) for r in lit]})")
    print(f"overhead         {100 * (1 - lit_best / bare_best):8.1f} %  (target ≤ 5 %)")
    print(f"FLOPs / update   {flops / 1e9:8.2f} GFLOP")
    print(f"model FLOP/s     {achieved / 1e9:8.2f} GFLOP/s")
    print(f"matmul FLOP/s    {peak / 1e9:8.2f} GFLOP/s")
    print(f"utilisation      {100 * achieved / peak:8.1f} % of measured matmul FLOP/s")


if __name__ == "__main__":
    main()
