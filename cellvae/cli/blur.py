"""``cellvae blur``: where did a reconstruction lose fine structure?

Compares an original and its reconstruction (OME-Zarr or TIFF, same shape) and writes the
local blur map (high-frequency power ratio per window, OME-Zarr, scaled by the stride and
translated to the windows' centres so it overlays the image) and a JSON summary: the global
ratio, the Fourier ring/shell correlation with its 1/7 and half-bit crossings, and the regions
that lost the most detail in the foreground. Inputs that cannot be compared (bool, complex,
all NaN, a constant original) are refused; the JSON holds null where a number is undefined.
"""

from __future__ import annotations

import argparse

HELP = "map where a reconstruction lost fine detail (HF power ratio, FRC) against the original"

#: largest FRC region per axis: a central crop keeps the transform's memory bounded.
FRC_MAX_EDGE = {2: 2048, 3: 256}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae blur``."""
    parser.add_argument("original", help="original image: OME-Zarr (or TIFF)")
    parser.add_argument("recon", help="reconstruction of the same shape: OME-Zarr (or TIFF)")
    parser.add_argument("-o", "--output", required=True, help="blur map to write, e.g. BLUR.zarr")
    parser.add_argument("--summary", required=True, help="JSON summary to write, e.g. blur.json")
    parser.add_argument("--window", type=int, default=32, help="window edge in px (default 32)")
    parser.add_argument("--stride", type=int, help="step between windows in px (default window/2)")
    parser.add_argument(
        "--cutoff",
        type=float,
        default=0.25,
        help="fraction of Nyquist above which power counts (default 0.25 = 0.125 cycles/px)",
    )
    parser.add_argument(
        "--planewise", action="store_true", help="2D windows plane by plane on a 3D image"
    )
    parser.add_argument("--top", type=int, default=5, help="worst regions to list (default 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _open(path: str, stack):
    """``(axes in NGFF order, voxel sizes, units, translation, lazily sliceable array)``."""
    from pathlib import Path

    from cellvae.io.axes import ngff_order

    if Path(path).suffix.lower() in (".tif", ".tiff"):
        from cellvae.io.tiff import read_tiff_meta

        meta = read_tiff_meta(path)
        stack.callback(meta.close)
        order = ngff_order(meta.axes)
        perm = [meta.axes.index(a) for a in order]
        return order, meta.voxel_size, meta.units, {}, meta.to_dask().transpose(perm)
    from cellvae.io.omezarr import open_image

    image = open_image(path)
    return image.axes, image.voxel_size, image.units, image.translation, image.array


def check_comparable(path: str, array, role: str) -> None:
    """Refuse an image whose blur cannot mean anything: not real numbers, all NaN, constant.

    A reconstruction may be constant (everything lost is a valid answer); an original may not.
    """
    import dask.array as da
    import numpy as np

    from cellvae.errors import CellvaeError

    kind = np.dtype(array.dtype).kind
    if kind == "b":
        raise CellvaeError(f"{path}: a bool mask, not an image; blur compares intensities")
    if kind not in "uif":
        raise CellvaeError(f"{path}: unsupported data type {array.dtype}; expected real numbers")
    lazy = array if isinstance(array, da.Array) else da.from_array(array, chunks=array.chunks)
    if kind != "f":
        if role == "original" and da.min(lazy).compute() == da.max(lazy).compute():
            raise CellvaeError(f"{path}: constant image; it has no detail to compare")
        return
    low, high = da.compute(da.nanmin(lazy), da.nanmax(lazy))
    if not np.isfinite(low):
        raise CellvaeError(f"{path}: all values are NaN or infinite; nothing to compare")
    if role == "original" and low == high:
        raise CellvaeError(f"{path}: constant image; it has no detail to compare")


def finite_json(value):
    """``value`` with every NaN or infinity replaced by None, so the JSON stays valid."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _frc_region(shape: tuple[int, ...], ndim: int) -> tuple[slice | int, ...]:
    """The first index of the leading axes and a central crop of the analysed ones."""
    lead = len(shape) - ndim
    index: list[slice | int] = [0] * lead
    for n in shape[lead:]:
        edge = min(n, FRC_MAX_EDGE[ndim])
        start = (n - edge) // 2
        index.append(slice(start, start + edge))
    return tuple(index)


def _describe(region: tuple[slice | int, ...]) -> list[list[int]]:
    return [[r, r + 1] if isinstance(r, int) else [r.start, r.stop] for r in region]


def run(args: argparse.Namespace) -> int:
    """Compute the blur map and summary; write both only when everything has worked."""
    import contextlib
    from pathlib import Path

    import numpy as np

    from cellvae.errors import CellvaeError
    from cellvae.io.atomic import claim_outputs
    from cellvae.metrics.sharpness import blur_map, frc

    with contextlib.ExitStack() as stack:
        summary_path, _ = stack.enter_context(
            claim_outputs([args.summary, args.output], args.overwrite)
        )
        axes, voxel, units, origin, original = _open(args.original, stack)
        recon_axes, _, _, _, recon = _open(args.recon, stack)
        if tuple(original.shape) != tuple(recon.shape) or axes != recon_axes:
            raise CellvaeError(
                f"{args.recon}: shape {tuple(recon.shape)} ({recon_axes}) differs from "
                f"{args.original}: {tuple(original.shape)} ({axes})"
            )
        check_comparable(args.original, original, "original")
        check_comparable(args.recon, recon, "reconstruction")
        spatial = [a for a in axes if a in "zyx"]
        ndim = 2 if args.planewise or len(spatial) == 2 else 3
        sizes = original.shape[-ndim:]
        if args.window > min(sizes):
            hint = "; try --planewise" if ndim == 3 and sizes[0] < args.window else ""
            raise CellvaeError(
                f"--window {args.window} is larger than the image ({sizes}, axes "
                f"{axes[-ndim:]}){hint}"
            )
        bmap = blur_map(original, recon, args.window, args.stride, args.cutoff, ndim=ndim)
        region = _frc_region(tuple(original.shape), ndim)
        curve = frc(np.asarray(original[region]), np.asarray(recon[region]))
        _write(args, summary_path, axes, voxel, units, origin, original.shape, bmap, curve, region)

    crossing = curve.crossing_1_7
    print(f"global HF power ratio {bmap.global_ratio:.3f} (above {0.5 * args.cutoff:g} cycles/px)")
    print(
        "FRC 1/7 crossing "
        + (f"{crossing:.3f} cycles/px" if crossing else "not reached up to Nyquist")
    )
    print(f"wrote {Path(args.output)} (map {bmap.ratio.shape}) and {summary_path}")
    return 0


def _write(args, summary_path, axes, voxel, units, origin, shape, bmap, curve, region) -> None:
    """Write the map (placed over the image: scale and translation) and the JSON summary."""
    import json
    import os

    import numpy as np

    from cellvae.io.atomic import temporary_path
    from cellvae.io.omezarr import write_image
    from cellvae.io.provenance import current_provenance

    ndim = bmap.ndim
    analysed = axes[-ndim:]
    map_voxel = {a: v * (bmap.stride if a in analysed else 1) for a, v in voxel.items()}
    map_origin = {
        a: origin.get(a, 0.0) + (bmap.origin_px * v if a in analysed else 0.0)
        for a, v in voxel.items()
    }
    summary = {
        "original": str(args.original),
        "recon": str(args.recon),
        "blur_map": str(args.output),
        "axes": axes,
        "shape": list(shape),
        "analysed_axes": analysed,
        "window_px": bmap.window,
        "stride_px": bmap.stride,
        "map_shape": list(bmap.ratio.shape),
        "map_voxel_size": map_voxel,
        "map_translation": map_origin,
        "units": units,
        "cutoff_fraction_of_nyquist": args.cutoff,
        "cutoff_cycles_per_px": 0.5 * args.cutoff,
        "global_hf_ratio": bmap.global_ratio,
        "median_window_hf_ratio": float(np.nanmedian(bmap.ratio)),
        "frc": {
            **curve.to_dict(),
            "region": _describe(region),
            "resolution_1_7_px": curve.resolution("1/7"),
            "resolution_half_bit_px": curve.resolution("half-bit"),
        },
        "worst_regions": bmap.worst_regions(args.top),
        "provenance": current_provenance(),
    }
    write_image(
        args.output,
        bmap.ratio.astype(np.float32),
        axes,
        voxel_size=map_voxel,
        units=units,
        overwrite=args.overwrite,
        translation=map_origin,
    )
    tmp = temporary_path(summary_path)
    tmp.write_text(json.dumps(finite_json(summary), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, summary_path)
