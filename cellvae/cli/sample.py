"""``cellvae sample``: prior samples, the z = 0 prototype, or interpolations, as a TIFF stack."""

from __future__ import annotations

import argparse

HELP = "draw images from a trained VAE: prior samples, prototype, interpolations (TIFF stack)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae sample``."""
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cellvae fit")
    parser.add_argument("-o", "--output", required=True, help="output TIFF, e.g. samples.tif")
    parser.add_argument("-n", type=int, default=16, help="number of prior samples")
    parser.add_argument("--temperature", type=float, default=1.0, help="prior std scale")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--prototype", action="store_true", help="decode z = 0 only")
    what.add_argument(
        "--interpolate",
        nargs=2,
        type=int,
        metavar=("A", "B"),
        help="interpolate between the cells with label ids A and B of --embeddings",
    )
    what.add_argument(
        "--interpolate-codes",
        nargs=2,
        metavar=("A.npy", "B.npy"),
        help="interpolate between two latent codes saved with numpy",
    )
    parser.add_argument("--embeddings", help="table written by cellvae embed (for --interpolate)")
    parser.add_argument("--steps", type=int, default=8, help="images along an interpolation")
    parser.add_argument(
        "--image",
        help="OME-Zarr whose intensity statistics and voxel size the output takes "
        "(default: the training image the checkpoint names; without one, the model's level "
        "scale 0 .. 2**bits - 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace) -> int:
    """Claim the output, then generate and write the stack."""
    from cellvae.io.atomic import claim_outputs

    with claim_outputs([args.output], args.overwrite):
        return _sample(args)


def _sample(args: argparse.Namespace) -> int:
    """Generate and write the stack, once the output is claimed."""
    import numpy as np
    import torch

    from cellvae.errors import CellvaeError
    from cellvae.inference import generate
    from cellvae.inference.finetuned import check_decoding_model
    from cellvae.inference.model import default_patch, load_model
    from cellvae.inference.units import data_units

    if args.interpolate and args.embeddings:
        check_decoding_model(args.embeddings, args.ckpt)
    vae, hparams = load_model(args.ckpt)
    patch = default_patch(vae, hparams)
    units = data_units(args.ckpt, hparams, vae.in_channels, vae.ndim, args.image)
    torch.manual_seed(args.seed)
    if args.prototype:
        x = generate.prototype(vae, patch)
    elif args.interpolate:
        if not args.embeddings:
            raise CellvaeError("--interpolate needs --embeddings cells.parquet")
        a, b = generate.codes_of_cells(args.embeddings, args.interpolate)
        x = generate.interpolate(vae, a, b, args.steps, patch)
    elif args.interpolate_codes:
        try:
            a, b = (np.load(p) for p in args.interpolate_codes)
        except (OSError, ValueError) as err:
            raise CellvaeError(f"--interpolate-codes: cannot read ({err})") from None
        x = generate.interpolate(vae, a, b, args.steps, patch)
    else:
        x = generate.sample(vae, args.n, patch, args.temperature)
    stack = generate.to_stack(x, units.quantizers)
    generate.write_stack(args.output, stack, args.overwrite, ndim=vae.ndim, units=units)
    voxel = " x ".join(f"{v:g}" for v in units.voxel_size.values())
    unit = next(iter(units.units.values()), "px")
    print(
        f"wrote {args.output} ({len(x)} images of {list(patch)}, voxel {voxel} {unit}; "
        f"intensities in the units of {units.source})"
    )
    return 0
