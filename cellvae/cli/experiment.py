"""``cellvae experiment``: reproduce the VAE facts the project rests on (tables + figures)."""

from __future__ import annotations

import argparse

HELP = "run an experiment (or all) and write its table, figure and, for 'all', a report"

#: kept in step with ``cellvae.experiments._report.EXPERIMENTS`` (checked by a test)
NAMES = (
    "rate-distortion",
    "collapse",
    "variance-to-zero",
    "prototype",
    "latent-size",
    "pca",
    "blur",
    "lorenz",
    "amortization-gap",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``NAME|all``, ``-o/--outdir``, ``--fast``, ``--seed``."""
    parser.add_argument("name", choices=[*NAMES, "all"], help="experiment to run, or 'all'")
    parser.add_argument(
        "-o",
        "--outdir",
        default="experiment-results",
        help="output folder (default: experiment-results)",
    )
    parser.add_argument("--fast", action="store_true", help="tiny data and few steps (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def run(args: argparse.Namespace) -> int:
    """Run the experiment(s), print where outputs went and how long each took."""
    import functools
    from pathlib import Path

    from cellvae.experiments._report import run_all
    from cellvae.io.atomic import claim_folder

    outdir = Path(args.outdir)
    names = None if args.name == "all" else [args.name]
    with claim_folder(outdir):
        log = functools.partial(print, flush=True)
        run_all(outdir, names, fast=args.fast, seed=args.seed, log=log)
    print(f"report: {outdir / 'report.md'}, summary: {outdir / 'summary.json'}")
    return 0
