"""``cellvae reconstruct``: tiled, blended, resumable reconstruction of a whole image.

Split across jobs: ``--prepare`` once, then ``--part I/N`` for I = 1..N (in any order, at
once or one after another, each rerun alone if it dies), then ``--finalize``.
"""

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
        help="overlap of neighbouring tiles in voxels (default: from the model's receptive field)",
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
    parser.add_argument(
        "--batch-size",
        type=int,
        help="tiles per forward pass (default: 2^18 voxels' worth, 1 to 16 tiles)",
    )
    parser.add_argument(
        "--block",
        type=int,
        metavar="N",
        help="side of the blocks written at once: the unit of progress, resuming and of the "
        "shares of --part (default 256 in 2D, 128 in 3D)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where the model runs (auto: a GPU if torch sees one)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile: 10-30 s to compile, then about 1.5x the "
        "tiles per second on CPU (needs a C++ compiler; falls back with a warning)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--prepare", action="store_true", help="only create the empty output (for --part runs)"
    )
    split.add_argument(
        "--part",
        metavar="I/N",
        help="write only the I-th of N disjoint shares of the blocks (no pyramid, not final)",
    )
    split.add_argument(
        "--finalize",
        action="store_true",
        help="check every part is written, build the pyramid and give the output its name",
    )


def run(args: argparse.Namespace) -> int:
    """Reconstruct ``args.input`` into ``args.output`` (or one step of a split run)."""
    import signal
    import sys
    import threading

    from cellvae.inference.partial import parse_part
    from cellvae.inference.reconstruct import Interrupted, reconstruct_image

    stage, part = "all", (1, 1)
    if args.part:
        stage, part = "part", parse_part(args.part)
    elif args.prepare or args.finalize:
        stage = "prepare" if args.prepare else "finalize"

    def stop(signum, frame):
        raise KeyboardInterrupt  # a batch system's SIGTERM: keep the finished blocks, unlock

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
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
            block=args.block,
            device=args.device,
            compile=args.compile,
            progress=not args.no_progress,
            stage=stage,
            part=part,
        )
    except Interrupted as stop:
        print(
            f"cellvae reconstruct: interrupted; kept {stop.kept} of {stop.total} blocks in "
            f"{stop.path}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    done = f"({stats.blocks_written} blocks written, {stats.blocks_skipped} resumed, "
    done += f"{stats.tiles_predicted} tiles)"
    messages = {
        "all": f"wrote {args.output} {done}",
        "prepare": f"prepared {args.output}.partial",
        "part": f"part {args.part} of {args.output}: {done}",
        "finalize": f"wrote {args.output}",
    }
    print(messages[stage])
    return 0
