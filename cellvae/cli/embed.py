"""``cellvae embed``: one table row per labelled cell with its latent code."""

from __future__ import annotations

import argparse

HELP = "embed every labelled cell with a trained VAE into a parquet table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae embed``."""
    parser.add_argument("input", help="OME-Zarr image (as written by cellvae ingest)")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cellvae fit")
    parser.add_argument(
        "--labels", required=True, help="label image: TIFF, OME-Zarr, or IMAGE.zarr/labels/NAME"
    )
    parser.add_argument("-o", "--output", required=True, help="output table, e.g. cells.parquet")
    parser.add_argument(
        "--axes", help="axes of the label image in storage order, e.g. ZYX, TYX (default: metadata)"
    )
    parser.add_argument(
        "--t",
        metavar="N|all",
        help="time point of a time-lapse to embed, or 'all' (adds a t column)",
    )
    parser.add_argument(
        "--classes",
        metavar="FILE",
        help="CSV/Parquet of label and class columns (e.g. saved by napari's latent browser): "
        "added to the table, '' for cells it does not name",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="cells per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Embed the cells of ``args.labels`` into ``args.output``."""
    from cellvae.errors import CellvaeError
    from cellvae.inference.classes import add_classes_to_table, read_classes
    from cellvae.inference.embed import embed_file
    from cellvae.io.atomic import claim_outputs

    classes = read_classes(args.classes) if args.classes else None

    t = args.t
    if t is not None and t != "all":
        if not t.isdigit():
            raise CellvaeError(f"--t: {t!r} must be a time point (0, 1, ...) or 'all'")
        t = int(t)
    with claim_outputs([args.output], args.overwrite):
        table = embed_file(
            args.ckpt,
            args.input,
            args.labels,
            args.output,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            label_axes=args.axes,
            t=t,
        )
        if classes is not None:
            named = add_classes_to_table(args.output, classes, args.classes)
            print(f"classes of {named} cells from {args.classes}")
    print(f"wrote {args.output} ({len(table)} cells)")
    return 0
