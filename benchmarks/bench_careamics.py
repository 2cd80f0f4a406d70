"""cellvae side of the CAREamics comparison (../shared/peers/careamics/, its INSTALL.md).

The shared harness's ``cellvae_side/cv_bench.py`` with the sizes and options added since:
``--size s567k_shuffle`` (the matched 567k model as the presets now build it: finest latent at
1/2 scale, sub-pixel head of 36 channels, channels-last) and ``--precision`` (bf16-mixed on
CPUs with AVX512-BF16/AMX). Run with the project venv python; PEER_WORK = scratch folder
(made by the harness's make_data.py), e.g.

  python3 $CARE/cellvae_side/runner.py results.jsonl 3 \
    "$PYC $CARE/bench_lvae.py lightning --preset hdn_default --warmup 5 --steps 20" \
    "$PYV benchmarks/bench_careamics.py lightning --size s567k_shuffle --warmup 5 --steps 20"

Modes (one per process, so peak RSS is per mode):
  lightning : VAEModule + CellDataModule (OME-Zarr of mirror-tiled img2d, 64x64, batch 16,
              num_workers 0, default 'foreground' sampler) -> lightning Trainer.fit, timed like
              bench_lvae.py (callback stamps). Saves a checkpoint for predict.
  predict   : reconstruct_image (what `cellvae reconstruct` runs) of the 2048^2 OME-Zarr,
              tile/overlap as given, batch 4; warm-up pass on the same image first.
  flops     : FlopCounterMode on one training update (batch 16) and one eval forward.
Prints one JSON line prefixed with RESULT.
"""

# ruff: noqa: E402  (imports are timed: T_IMPORT)
import argparse
import json
import os
import resource
import time
import warnings

t_import0 = time.perf_counter()
warnings.filterwarnings("ignore")
import numpy as np
import torch

torch.set_num_threads(2)
torch.set_num_interop_threads(2)
import lightning as L

from cellvae.data.datamodule import CellDataModule
from cellvae.training.module import VAEModule

T_IMPORT = time.perf_counter() - t_import0

WORK = os.environ["PEER_WORK"]  # scratch folder made by make_data.py
ZARR = f"{WORK}/img2048.zarr"
SIZES = {  # ~567k (2 groups) and ~3.0M (4 groups), latent channels 16
    "s567k": dict(widths=[72, 272], latent_channels=16),
    "s3m": dict(widths=[96, 192, 320, 480], latent_channels=16),
    "s567k_half": dict(widths=[72, 256], latent_channels=16, finest_latent="half"),
    "s567k_half_cl": dict(
        widths=[72, 256], latent_channels=16, finest_latent="half", channels_last=True
    ),
    "s567k_shuffle": dict(
        widths=[72, 244],
        latent_channels=16,
        finest_latent="half",
        head_upsample="shuffle",
        head_width=36,
        channels_last=True,
    ),
    "s3m_shuffle": dict(
        widths=[96, 192, 320, 456],
        latent_channels=16,
        finest_latent="half",
        head_upsample="shuffle",
        head_width=48,
        channels_last=True,
    ),
}


def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def matmul_gflops(n=2048, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def module_kwargs(a):
    return dict(
        arch="hierarchical",
        ndim=2,
        in_channels=1,
        patch_size=64,
        likelihood=a.lik,
        iwae_samples=0,
        grid_images=0,
        **SIZES[a.size],
    )


def run_lightning(a):
    L.seed_everything(0, verbose=False)
    mm = matmul_gflops()
    module = VAEModule(**module_kwargs(a))
    dm = CellDataModule(
        paths=[ZARR],
        patch_size=[64, 64],
        ndim=2,
        batch_size=16,
        num_workers=0,
        patches_per_epoch=512,
        val_fraction=0.1,
        bits=8,
        sampler=a.sampler,
    )
    total = a.warmup + a.steps
    stamps = []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, m, batch, i):
            self.t0 = time.perf_counter()
            self.bs = batch.shape[0]

        def on_train_batch_end(self, trainer, m, out, batch, i):
            stamps.append((trainer.current_epoch, self.t0, time.perf_counter(), self.bs))

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=total,
        precision=a.precision,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Timer()],
        limit_val_batches=a.val_batches,
    )
    rss0 = rss()
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_wall = time.perf_counter() - t0
    assert len(stamps) == total, len(stamps)
    meas = stamps[a.warmup :]
    bs = [s[3] for s in meas]
    e2e = meas[-1][2] - stamps[a.warmup - 1][2]
    st = [s[2] - s[1] for s in meas]
    ckpt = f"{WORK}/cv_{a.size}_{a.lik}.ckpt"
    trainer.save_checkpoint(ckpt)
    return {
        "mode": "lightning",
        "size": a.size,
        "lik": a.lik,
        "sampler": a.sampler,
        "precision": a.precision,
        "steps_measured": len(meas),
        "batch_sizes_seen": sorted(set(bs)),
        "patches_per_s_e2e": sum(bs) / e2e,
        "patches_per_s_stepcompute": sum(bs) / sum(st),
        "median_step_s": float(np.median(st)),
        "epoch_boundaries_in_window": len({s[0] for s in meas}) - 1,
        "fit_wall_s": fit_wall,
        "import_s": T_IMPORT,
        "peak_rss_before_fit_mb": rss0,
        "peak_rss_mb": rss(),
        "matmul_gflops": mm,
        "params": sum(p.numel() for p in module.model.parameters()),
        "skipped_updates": int(module.skipped_updates),
        "ckpt": ckpt,
    }


def run_predict(a):
    from cellvae.inference.reconstruct import reconstruct_image

    ckpt = f"{WORK}/cv_{a.size}_{a.lik}.ckpt"
    out = f"{WORK}/recon_{a.size}_{a.tile}.zarr"
    src = f"{WORK}/img{a.side}.zarr"
    times, first = [], None
    for rep in range(a.pred_reps + 1):
        t0 = time.perf_counter()
        stats = reconstruct_image(
            ckpt,
            src,
            out,
            tile=a.tile,
            overlap=a.overlap,
            batch_size=a.pred_batch,
            overwrite=True,
            progress=False,
            compile=a.compile,
        )
        dt = time.perf_counter() - t0
        if rep == 0:
            first = dt
        else:
            times.append(dt)
    import zarr

    arr = (
        np.asarray(zarr.open_group(out, mode="r")["s0"][...])
        if os.path.isdir(out + "/s0")
        else None
    )
    return {
        "mode": "predict",
        "size": a.size,
        "lik": a.lik,
        "tile": a.tile,
        "overlap": a.overlap,
        "pred_batch": a.pred_batch,
        "compile": a.compile,
        "n_tiles": stats.tiles_predicted,
        "first_pass_s": first,
        "times_s": times,
        "median_s": float(np.median(times)),
        "pixels_per_s": a.side * a.side / float(np.median(times)),
        "side": a.side,
        "import_s": T_IMPORT,
        "out_finite": None if arr is None else bool(np.isfinite(arr).all()),
        "peak_rss_mb": rss(),
    }


def run_flops(a):
    from torch.utils.flop_counter import FlopCounterMode

    from cellvae.training.objective import elbo_terms

    m = VAEModule(**module_kwargs(a)).model
    x = torch.rand(16, 1, 64, 64) * 2 - 1
    with FlopCounterMode(display=False) as c:
        elbo_terms(m, x, beta=1.0).loss.backward()
    m.eval()
    with FlopCounterMode(
        display=False
    ) as c2:  # grad on: FlopCounter module tracker trips on no_grad
        m.reconstruct_params(torch.rand(4, 1, 128, 128) * 2 - 1)
    return {
        "mode": "flops",
        "size": a.size,
        "lik": a.lik,
        "params": sum(p.numel() for p in m.parameters()),
        "train_flop_per_patch64": c.get_total_flops() / 16,
        "fwd_flop_per_px": c2.get_total_flops() / (4 * 128 * 128),
        "matmul_gflops": matmul_gflops(),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["lightning", "predict", "flops"])
    ap.add_argument("--size", choices=sorted(SIZES), default="s567k")
    ap.add_argument("--lik", default="dlogistic")
    ap.add_argument("--sampler", default="foreground")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--val-batches", type=float, default=1.0)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--pred-batch", type=int, default=4)
    ap.add_argument("--pred-reps", type=int, default=1)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--compile", action="store_true", help="predict: reconstruct --compile")
    a = ap.parse_args()
    r = {"lightning": run_lightning, "predict": run_predict, "flops": run_flops}[a.mode](a)
    r["tool"] = "cellvae"
    r["versions"] = {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps(r), flush=True)
