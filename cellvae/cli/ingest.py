"""``cellvae ingest``: convert TIFF / OME-TIFF / Zarr into an NGFF 0.5 OME-Zarr image."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

HELP = (
    "convert a TIFF, OME-TIFF, (OME-)Zarr, PNG, JPEG, CZI, ND2 or LIF image into OME-Zarr 0.5 "
    "with statistics"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae ingest``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "input",
        nargs="?",
        help="TIFF / OME-TIFF / ImageJ TIFF / OME-Zarr (a path or an https:// or s3:// URL) / "
        "Zarr array / PNG / JPEG / CZI, ND2, LIF and other formats bioio reads (formats extra)",
    )
    source.add_argument(
        "--sample",
        metavar="NAME",
        help="write a bundled sample with its labels instead: nuclei_2d, nuclei_3d, "
        "mitochondria_2d, mitochondria_3d",
    )
    parser.add_argument("-o", "--output", required=True, help="output image, e.g. OUT.zarr")
    parser.add_argument(
        "--truth-out",
        metavar="PATH",
        help="with --sample mitochondria_*: also write the noise-free truth there (OME-Zarr), "
        "e.g. for cellvae blur --truth",
    )
    parser.add_argument(
        "--axes", help="axes of the input in storage order, e.g. ZYX, TYX, CZYX (default: metadata)"
    )
    parser.add_argument(
        "--voxel-size",
        nargs="+",
        type=float,
        metavar="SIZE",
        help="voxel size, Z Y X (Y X in 2D), in --unit (default micrometre); overrides metadata",
    )
    parser.add_argument(
        "--unit",
        help="unit of --voxel-size, e.g. nanometer, angstrom, Å (default: micrometer)",
    )
    parser.add_argument(
        "--chunks",
        nargs="+",
        type=int,
        metavar="N",
        help="chunk size per spatial axis, Z Y X (Y X in 2D); default 64 64 64 or 256 256",
    )
    parser.add_argument("--series", type=int, default=0, help="series of a multi-series TIFF")
    parser.add_argument(
        "--scene",
        metavar="INDEX|NAME",
        help="scene (position, tile region) of a CZI / ND2 / LIF file, by index or name "
        "(default: the first); the series of a TIFF",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@contextmanager
def _parent_folders(output: str) -> Iterator[None]:
    """Create the missing folders above ``output`` (as the presets' ``data/generated/``);
    remove them again, if still empty, when the command fails."""
    from cellvae.errors import CellvaeError

    parent = Path(output).absolute().parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CellvaeError(f"{output}: cannot create its folder {parent} ({reason})") from None
    try:
        yield
    except BaseException:
        for folder in missing:  # deepest first
            with suppress(OSError):
                folder.rmdir()
        raise


def run(args: argparse.Namespace) -> int:
    """Ingest ``args.input`` (or the sample ``args.sample``) into ``args.output``."""
    with _parent_folders(args.output):
        return _ingest(args)


def _ingest(args: argparse.Namespace) -> int:
    """:func:`run` once the output's folder exists."""
    from cellvae.errors import CellvaeError
    from cellvae.io.atomic import claim_outputs

    if args.truth_out and not args.sample:
        raise CellvaeError("--truth-out needs --sample: only synthetic samples have a truth")
    outputs = [args.output] + ([args.truth_out] if args.truth_out else [])
    with claim_outputs(outputs, args.overwrite):
        if args.sample:
            from cellvae.data.samples import write_sample

            out = write_sample(
                args.sample, args.output, overwrite=args.overwrite, truth_output=args.truth_out
            )
            print(f"wrote sample {args.sample} with its labels to {out}")
            if args.truth_out:
                print(f"wrote its noise-free truth to {args.truth_out}")
            return 0

        from cellvae.io.ingest import ingest

        out = ingest(
            args.input,
            args.output,
            axes=args.axes,
            voxel_size=args.voxel_size,
            chunks=args.chunks,
            overwrite=args.overwrite,
            series=args.series,
            progress=not args.no_progress,
            unit=args.unit,
            scene=args.scene,
        )
    print(f"wrote {out}")
    return 0
