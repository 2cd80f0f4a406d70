"""The noise-aware blur map against ground truth: 2D and 3D synthetic mitochondria.

For each image (2D 512², 3D 64 x 256 x 256 with a PSF twice as long in z), photon level and
seed, :func:`cellvae.experiments.blur_truth.validate` scores reconstructions twice: from the
noisy original with the camera model (what ``cellvae blur`` does) and from the noise-free
truth (the right answer). Reconstructions: the truth (a perfect denoiser), the truth blurred
by σ = 0.5, 1, 2 px, a graded blur (σ 0 -> 2 px across the image) and a small hierarchical
VAE trained on the noisy image for ``--steps`` steps. Printed per case and photon level, as
mean ± standard deviation over seeds:

- median share kept over windows with signal, from the noisy original and from the truth;
- Spearman rank correlation of the two maps over the windows where both have a value (it
  needs windows that differ: the graded blur and the VAE; a uniform blur leaves little to
  rank) and the median absolute difference of the two maps there;
- share of background windows (no tubule within reach) called "no signal";
- "reconstruction keeps" (px) from the noisy original and from the truth;
- the global share with the camera *estimated* from the image instead of given (n/a where the
  image is clipped at 0, as the 8-bit 1000-photon images are).

Run: ``python benchmarks/bench_blur_truth.py [--dims 2 3] [--photons 10 30 200 1000]
[--seeds 3 4 5] [--seeds-3d 3] [--steps 600] [--steps-3d 200] [--model-seeds 1]
[--threads 1] [--out DIR]``; ``--out`` writes ``rows.csv`` (one row per case, photon level and
seed; updated as it goes) and ``table.md``. The camera is estimated for the first seed only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cellvae.experiments.blur_truth import validate

SHAPES = {2: (512, 512), 3: (64, 256, 256)}
COLUMNS = {
    "median_share_noisy": "share kept (noisy original)",
    "median_share_truth": "share kept (truth)",
    "spearman": "Spearman noisy vs truth",
    "median_abs_diff": "median abs. difference of the maps",
    "background_no_signal": "background no-signal",
    "keeps_px_noisy": "keeps px (noisy)",
    "keeps_px_truth": "keeps px (truth)",
    "global_share_estimated_camera": "global share, estimated camera",
    "global_share_noisy": "global share, given camera",
}


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def table(rows: pd.DataFrame) -> str:
    """Markdown table: one line per dims, photons and case; mean ± sd over seeds."""
    lines = [
        "| image | photons | reconstruction | seeds | " + " | ".join(COLUMNS.values()) + " |",
        "|" + "---|" * (4 + len(COLUMNS)),
    ]
    for (dims, photons, case), group in rows.groupby(["dims", "photons", "case"], sort=False):
        cells = [_cell(group[c]) for c in COLUMNS]
        lines.append(
            f"| {dims} | {photons:g} | {case} | {len(group)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--photons", type=float, nargs="+", default=[10, 30, 200, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--steps", type=int, default=600, help="VAE steps in 2D (0: no VAE)")
    parser.add_argument("--steps-3d", type=int, default=200, help="VAE steps in 3D (0: no VAE)")
    parser.add_argument("--model-seeds", type=int, default=1, help="seeds that train a VAE")
    parser.add_argument(
        "--seeds-3d", type=int, nargs="+", help="seeds of the 3D images (default: --seeds)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--from-csv", type=Path, nargs="+", help="only print the table of earlier rows.csv files"
    )
    args = parser.parse_args()
    if args.from_csv:
        print(table(pd.concat([pd.read_csv(p) for p in args.from_csv], ignore_index=True)))
        return
    torch.set_num_threads(args.threads)
    rows = []
    started = time.process_time()
    for ndim in args.dims:
        steps = args.steps if ndim == 2 else args.steps_3d
        seeds = args.seeds if ndim == 2 or not args.seeds_3d else args.seeds_3d
        for photons in args.photons:
            for k, seed in enumerate(seeds):
                model_steps = steps if k < args.model_seeds else 0
                part = validate(SHAPES[ndim], photons, seed, model_steps, estimate_camera=k == 0)
                rows += part
                if args.out:  # what is done so far survives an interrupted run
                    args.out.mkdir(parents=True, exist_ok=True)
                    pd.DataFrame(rows).to_csv(
                        args.out / "rows.csv", index=False, float_format="%.6g"
                    )
                print(
                    f"{ndim}D {photons:g} photons seed {seed}: "
                    f"{sum(r['cpu_seconds'] for r in part):.0f} CPU s",
                    flush=True,
                )
    frame = pd.DataFrame(rows)
    text = table(frame)
    print(text)
    print(f"total {time.process_time() - started:.0f} CPU s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "rows.csv", index=False, float_format="%.6g")
        (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
