"""Training throughput of ``VAEModule`` under Lightning vs. a bare PyTorch loop, and FLOP use.

Both loops train the same model on the same in-memory batches with the same objective, AdamW,
gradient clipping and finiteness checks; the difference is Lightning's overhead (target
≤ 5 %). The model's achieved FLOP/s (``torch.utils.flop_counter`` on one update) is compared
with the machine's measured float32 matmul FLOP/s.

Run: ``python benchmarks/bench_train.py [--arch hierarchical] [--steps 20] [--threads 2]``;
the CAREamics-matched size (566,817 parameters in HDN): ``--widths 72 244 --latent-channels 16
--finest-latent half --head-upsample shuffle --head-width 36 --channels-last --batch 16``.

On a GPU (``--device cuda [--precision bf16-mixed]``) it also reports the GPU busy fraction:
the device time of the timed training steps (CUDA events around each step) over their wall
time. ``--zarr IMAGE.ome.zarr`` streams the patches from an OME-Zarr image through
``CellDataModule`` (``--workers``; pinned memory on a GPU) instead of in-memory batches, and
reports the loader's wait share: the part of the wall time spent between one step's end and
the next step's start, waiting for a batch.
"""

from __future__ import annotations

import argparse
import math
import time

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from cellvae.data.datamodule import CellDataModule
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
    """Wall time from the start of step ``warmup`` to the end of training, the time spent
    waiting for batches in between, and (on a GPU) the device time of each timed step."""

    def __init__(self, warmup: int, cuda: bool = False) -> None:
        self.warmup, self.cuda = warmup, cuda
        self.start = self.stop = self.last_end = math.nan
        self.wait = 0.0
        self.events: list = []
        self.step = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self.step == self.warmup:
            if self.cuda:
                torch.cuda.synchronize()
                now = time.perf_counter()
            self.start = now
        elif self.step > self.warmup:
            self.wait += now - self.last_end
        if self.cuda and self.step >= self.warmup:
            self.events.append([torch.cuda.Event(enable_timing=True) for _ in range(2)])
            self.events[-1][0].record()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.cuda and self.step >= self.warmup:
            self.events[-1][1].record()
        self.step += 1
        self.last_end = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.stop = time.perf_counter()

    def busy_fraction(self) -> float:
        """Device time of the timed steps over their wall time (``nan`` on a CPU)."""
        if not self.events:
            return math.nan
        busy = sum(a.elapsed_time(b) for a, b in self.events) / 1000
        return busy / (self.stop - self.start)


def lightning_rate(
    kwargs: dict,
    data: torch.Tensor | CellDataModule,
    batch: int,
    steps: int,
    warmup: int,
    device: str = "cpu",
    precision: str = "32-true",
) -> dict:
    """Patches per second of ``Trainer.fit`` over ``steps`` updates after ``warmup``, with the
    loader's wait share and (on a GPU) the GPU busy fraction."""
    torch.manual_seed(0)
    module = VAEModule(**kwargs)
    clock = _Clock(warmup, cuda=device == "cuda")
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    if isinstance(data, CellDataModule):
        trainer.fit(module, datamodule=data)
    else:
        trainer.fit(module, DataLoader(data, batch_size=batch))
    wall = clock.stop - clock.start
    return {
        "rate": steps * batch / wall,
        "wait_share": clock.wait / wall,
        "busy": clock.busy_fraction(),
    }


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
    parser.add_argument("--head-upsample", choices=["nearest", "shuffle"], default="nearest")
    parser.add_argument("--head-width", type=int, help="full-resolution head channels")
    parser.add_argument("--likelihood", help="override the preset's likelihood")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed, 16-mixed"
    )
    parser.add_argument("--zarr", help="stream patches from this OME-Zarr image instead")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (--zarr)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU")
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
        kwargs["head_upsample"] = args.head_upsample
        kwargs["head_width"] = args.head_width
    if args.likelihood:
        kwargs["likelihood"] = args.likelihood
    if args.channels_last:
        kwargs["channels_last"] = True
    data = _batches(args.warmup + args.steps + 1, args.batch, args.patch)
    source = data
    if args.zarr:
        source = CellDataModule(
            paths=[args.zarr],
            patch_size=[args.patch, args.patch],
            ndim=2,
            batch_size=args.batch,
            num_workers=args.workers,
            patches_per_epoch=args.batch * (args.warmup + args.steps + 1),
            val_fraction=0.0,
            bits=kwargs.get("bits", 8),
        )
    device, precision = args.device, args.precision
    bare, lit = [], []
    for _ in range(args.repeats):  # alternate to share out the noise of a busy machine
        if device == "cpu" and precision == "32-true":
            bare.append(bare_rate(kwargs, data, args.batch, args.steps, args.warmup))
        lit.append(
            lightning_rate(kwargs, source, args.batch, args.steps, args.warmup, device, precision)
        )
    lit_best = max(r["rate"] for r in lit)
    best = max(lit, key=lambda r: r["rate"])
    bare_best = max(bare) if bare else lit_best
    flops = update_flops(kwargs, data[: args.batch])
    peak = matmul_flops_per_s()
    achieved = flops * bare_best / args.batch
    params = sum(p.numel() for p in VAEModule(**kwargs).model.parameters())
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {args.threads} threads"
    print(
        f"model            {args.arch} {kwargs['widths']}, {params:,} parameters, "
        f"batch {args.batch}, patch {args.patch}², {precision}, {where}"
    )
    print(f"data             {args.zarr or 'in-memory batches'}")
    if bare:
        shown = [round(r, 1) for r in bare]
        print(f"bare PyTorch     {bare_best:8.1f} patches/s   (runs: {shown})")
    runs = [round(r["rate"], 1) for r in lit]
    print(f"Lightning        {lit_best:8.1f} patches/s   (runs: {runs})")
    if bare:
        print(f"overhead         {100 * (1 - lit_best / bare_best):8.1f} %  (target ≤ 5 %)")
    print(f"loader wait      {100 * best['wait_share']:8.1f} % of the timed wall time")
    if device == "cuda":
        print(f"GPU busy         {100 * best['busy']:8.1f} % of the timed wall time")
    if device != "cpu" or precision != "32-true":
        return
    print(f"FLOPs / update   {flops / 1e9:8.2f} GFLOP")
    print(f"model FLOP/s     {achieved / 1e9:8.2f} GFLOP/s")
    print(f"matmul FLOP/s    {peak / 1e9:8.2f} GFLOP/s")
    print(f"utilisation      {100 * achieved / peak:8.1f} % of measured matmul FLOP/s")


if __name__ == "__main__":
    main()
