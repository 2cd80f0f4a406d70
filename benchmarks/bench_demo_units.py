"""The demo's cell embedding, as the workflow makes it: how many of its units are informative?

For each seed: ``cellvae fit`` of the 2D preset on the bundled ``nuclei_2d`` sample for the
demo's 300 steps (the workflow's own command line: CSV logger, the preset, ``--data.paths``),
then ``cellvae embed`` of its 125 labelled nuclei (centred crops, neighbours masked), with
and without ``--finetune N``. From each cell table: the informative units (Gaussian-channel
information > 0.1 nats, :mod:`cellvae.metrics.information`), the units the old variance cut
calls active, the embedding's mutual information with the cell (at most ln 125 = 4.83 nats),
and the validation ``val/informative_units`` of the training log (all latent groups).

Run: ``python benchmarks/bench_demo_units.py [--seeds 0 1 2] [--steps 300] [--finetune 600]
[--workdir DIR] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cellvae.metrics.information import INFORMATIVE_NATS, mutual_information, unit_information

ROOT = Path(__file__).resolve().parents[1]
CELLVAE = [sys.executable, "-m", "cellvae"]


def run(*args: str) -> None:
    """Run one ``cellvae`` command; its output goes to the console only on failure."""
    done = subprocess.run([*CELLVAE, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"cellvae {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def table_units(path: Path) -> dict:
    """Informative and variance-active units and the mutual information of a cell table."""
    cells = pd.read_parquet(path)
    latent = [c for c in cells if c.startswith("z_mean_")]
    mean = torch.from_numpy(cells[latent].to_numpy(np.float64))
    logvar = torch.from_numpy(cells[[c.replace("mean", "logvar") for c in latent]].to_numpy())
    info = unit_information(mean, logvar)
    return {
        "informative_units": int((info > INFORMATIVE_NATS).sum()),
        "active_units_var_0.01": int((mean.var(0) > 0.01).sum()),
        "information_nats": round(float(info.sum()), 3),
        "mi_nats": round(mutual_information(mean, logvar, 4, torch.Generator().manual_seed(0)), 3),
        "cells": len(cells),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--finetune", type=int, default=600)
    parser.add_argument("--preset", default="configs/2d_hier_dlogistic.yaml")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="demo_units_"))
    work.mkdir(parents=True, exist_ok=True)
    image = work / "nuclei2d.ome.zarr"
    if not image.exists():
        run("ingest", "--sample", "nuclei_2d", "-o", str(image), "--no-progress")
    labels = image / "labels" / "nuclei"
    rows = []
    for seed in args.seeds:
        train = work / f"seed{seed}"
        run(
            "fit", "--config", args.preset, f"--data.paths=[{image}]",
            f"--trainer.max_steps={args.steps}", f"--seed_everything={seed}", f"--data.seed={seed}",
            f"--trainer.default_root_dir={train}",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.save_dir={train}", "--trainer.logger.version=0",
            "--trainer.enable_progress_bar=false",
        )  # fmt: skip
        ckpt = sorted(train.glob("**/checkpoints/*.ckpt"))[-1]
        metrics = pd.read_csv(next(train.glob("**/metrics.csv")))
        key = "val/informative_units"
        val = metrics[key].dropna() if key in metrics else []
        for finetune in sorted({0, args.finetune}):
            out = train / f"cells_ft{finetune}.parquet"
            run(
                "embed", "--ckpt", str(ckpt), str(image), "--labels", str(labels), "-o", str(out),
                "--finetune", str(finetune), "--overwrite", "--no-progress",
            )  # fmt: skip
            row = {"seed": seed, "steps": args.steps, "finetune": finetune} | table_units(out)
            row["val_informative_units_all_groups"] = float(val.iloc[-1]) if len(val) else None
            rows.append(row)
            print(row, flush=True)
    for finetune in sorted({0, args.finetune}):
        units = [r["informative_units"] for r in rows if r["finetune"] == finetune]
        print(f"finetune {finetune}: informative units {units} (seeds {args.seeds})")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
