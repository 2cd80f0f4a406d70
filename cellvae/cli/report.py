"""``cellvae report``: one Markdown page with figures for a pipeline run folder."""

from __future__ import annotations

import argparse

HELP = "summarise a run folder (training, reconstruction blur, cell embeddings, samples)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae report``."""
    parser.add_argument(
        "run_dir", help="results folder, or a folder holding one, e.g. runs/demo/IMAGE/PRESET"
    )
    parser.add_argument("-o", "--output", help="report path (default RUN_DIR/report.md)")
    found = "default: the newest found in RUN_DIR by the provenance cellvae records, else"
    parser.add_argument("--blur", help=f"JSON summary of cellvae blur ({found} blur.json)")
    parser.add_argument("--cells", help=f"table of cellvae embed ({found} cells.parquet)")
    parser.add_argument("--samples", help=f"TIFF of cellvae sample ({found} samples.tif)")
    parser.add_argument("--train", help="folder holding the training log (default: RUN_DIR)")


def run(args: argparse.Namespace) -> int:
    """Write the report and say where it is."""
    from cellvae.report import report_folder, write_run_report

    found = report_folder(args.run_dir)
    for line in found.listing():
        print(f"found in {found.folder}: {line}")
    out = write_run_report(
        found.folder, args.output, args.blur, args.cells, args.samples, args.train
    )
    print(f"wrote {out} (figures in {out.with_name(out.stem + '_figures')})")
    return 0
