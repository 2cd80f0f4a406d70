"""``cellvae reconstruct``: tiled, blended, resumable reconstruction of a whole image."""

from __future__ import annotations

import argparse

HELP = "reconstruct a whole OME-Zarr image with a trained VAE (tiled, blended, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae reconstruct``."""
    parser.add_argument("input", help="OME-Zarr image (as written by cellvae ingest)")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cellvae fit")
    parser.add_argument("-o", "--output", required=True, help="output image, e.g. RECON.zarr")
    parser.add_argument(
        "--tile",
        nargs="+",
        type=int,
        metavar="N",
        help="tile side(s) in voxels, one or one per axis (default: the model's patch)",
    )
    parser.add_argument(
        "--overlap",
        nargs="+",
        type=int,
        metavar="N",
        help="overlap of neighbouring tiles in voxels (default: 1/16 of the tile, at least 2)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="0: decode the posterior mean; N: mean of N posterior samples, and their "
        "standard deviation in RECON_std.zarr",
    )
    parser.add_argument(
        "--mode",
        choices=("mean", "mode"),
        default="mean",
        help="decode the likelihood's mean or its mode",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "input"),
        default="float32",
        help="output data type: float32, or the input's (rounded and clipped)",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Reconstruct ``args.input`` into ``args.output``."""
    from cellvae.inference.reconstruct import reconstruct_image

    stats = reconstruct_image(
        args.ckpt,
        args.input,
        args.output,
        tile=tuple(args.tile) if args.tile else None,
        overlap=tuple(args.overlap) if args.overlap else None,
        samples=args.samples,
        mode=args.mode,
        batch_size=args.batch_size,
        dtype=args.dtype,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"wrote {args.output} ({stats.blocks_written} blocks written, "
        f"{stats.blocks_skipped} resumed, {stats.tiles_predicted} tiles)"
    )
    return 0
