"""``cellvae export``: a trained model as a BioImage Model Zoo (bioimage.io) package."""

from __future__ import annotations

import argparse

HELP = "write a trained model as a BioImage Model Zoo package (bioimage.io .zip) and test it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae export``."""
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cellvae fit")
    parser.add_argument("-o", "--output", required=True, help="package to write, e.g. model.zip")
    parser.add_argument(
        "--image",
        help="OME-Zarr image whose stored statistics set the normalisation and whose central "
        "tile is the test input (default: the run's first training image)",
    )
    parser.add_argument("--name", help="model name (default: from the architecture)")
    parser.add_argument(
        "--author", action="append", metavar="NAME", help="an author (repeat for several)"
    )
    parser.add_argument(
        "--no-test",
        action="store_true",
        help="skip bioimageio.core's package test (what the Model Zoo's CI runs)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace) -> int:
    """Export ``args.ckpt`` to ``args.output`` and run the package's own test."""
    from cellvae.errors import CellvaeError
    from cellvae.export.bioimageio import export_model, test_package
    from cellvae.io.atomic import claim_outputs, remove_path

    with claim_outputs([args.output], args.overwrite):
        done = export_model(
            args.ckpt,
            args.output,
            image=args.image,
            name=args.name,
            authors=args.author,
            overwrite=args.overwrite,
        )
        local = done.local_summary
        extra = "" if local is None else f" + local summary {local.shape[1]}"
        print(
            f"wrote {done.path} (tile {list(done.test_input.shape[2:])}, embedding "
            f"{done.embedding.shape[1]}{extra}, {done.bits_per_dim:.3f} bits/dim on the test tile)"
        )
        if args.no_test:
            return 0
        summary = test_package(done.path)
        for detail in summary.details:
            print(f"  {detail.status:>7}  {detail.name}")
        if summary.status != "passed":
            remove_path(done.path)
            raise CellvaeError(f"{args.output}: bioimageio test {summary.status}; removed it")
    print(f"bioimageio test: {summary.status}")
    return 0
