"""``cellvae embed``: one table row per labelled cell with its latent code."""

from __future__ import annotations

import argparse

HELP = "embed every labelled cell with a trained VAE into a table (Parquet, or AnnData .h5ad)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae embed``."""
    parser.add_argument("input", help="OME-Zarr image (as written by cellvae ingest)")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cellvae fit")
    parser.add_argument(
        "--labels", required=True, help="label image: TIFF, OME-Zarr, or IMAGE.zarr/labels/NAME"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output table: cells.parquet, or cells.h5ad for AnnData (scanpy; anndata extra)",
    )
    parser.add_argument(
        "--axes", help="axes of the label image in storage order, e.g. ZYX, TYX (default: metadata)"
    )
    parser.add_argument(
        "--t",
        metavar="N|all",
        help="time point of a time-lapse to embed, or 'all' (adds a t column)",
    )
    parser.add_argument(
        "--labels-static",
        action="store_true",
        help="with --t all: apply labels of a single frame to every time point (warns)",
    )
    parser.add_argument(
        "--keep-neighbours",
        action="store_true",
        help="keep the other cells in each cell's crop (default: masked by background)",
    )
    parser.add_argument(
        "--finetune",
        type=int,
        default=0,
        metavar="STEPS",
        help="first fine-tune the model on the cells' centred crops for STEPS updates "
        "(e.g. 600; the table's finetune_steps column records it); the fine-tuned model is "
        "saved beside the table as <stem>.finetuned.ckpt and is the table's checkpoint",
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
    from cellvae.inference.finetuned import finetuned_path
    from cellvae.io.atomic import claim_outputs, remove_path

    classes = read_classes(args.classes) if args.classes else None
    if classes is not None and str(args.output).lower().endswith(".h5ad"):
        raise CellvaeError(
            f"--classes: adding classes to an AnnData table is not supported; write "
            f"{args.output[:-5]}.parquet, or add them in scanpy (adata.obs)"
        )

    t = args.t
    if args.finetune < 0:
        raise CellvaeError(f"--finetune: {args.finetune} must be >= 0 (updates)")
    if t is not None and t != "all":
        if not t.isdigit():
            raise CellvaeError(f"--t: {t!r} must be a time point (0, 1, ...) or 'all'")
        t = int(t)
    model = finetuned_path(args.output) if args.finetune > 0 else None
    with claim_outputs([args.output, *([model] if model else [])], args.overwrite):
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
            neighbours="kept" if args.keep_neighbours else "masked",
            labels_static=args.labels_static,
            finetune_steps=args.finetune,
        )
        if classes is not None:
            try:
                named = add_classes_to_table(args.output, classes, args.classes)
            except CellvaeError:
                if model is not None:
                    remove_path(model)  # its table was refused and removed
                raise
            print(f"classes of {named} cells from {args.classes}")
    print(f"wrote {args.output} ({len(table)} cells)")
    if model is not None:
        print(f"wrote {model} (the model fine-tuned on the cells, {args.finetune} updates)")
    return 0
