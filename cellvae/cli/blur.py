"""``cellvae blur``: how much of the original's fine structure did a reconstruction keep?

A reconstruction is also a denoiser, so the blur map is noise-aware: per window, the share of
the original's *resolvable* structure (signal above its noise, from the camera model) that the
reconstruction kept, 0..1, NaN where the original has no signal above noise
(:mod:`cellvae.metrics.structure`). The camera model (gain, offset, read noise) comes from the
options, else from the original's metadata, else from a variance-versus-mean fit to the
original; ``blur.json`` records which. The map is written as OME-Zarr, scaled by the stride and
translated to the windows' centres so it overlays the image; the JSON summary holds the global
share, "original resolves X, reconstruction keeps Y", the worst regions, the camera model, the
plain FRC against the noisy original and, with ``--truth``, the same figures against the
noise-free truth (and its map). Inputs that cannot be compared (bool, complex, all NaN, a
constant original) are refused; the JSON holds null where a number is undefined.
"""

from __future__ import annotations

import argparse

HELP = "map the share of the original's resolvable fine structure a reconstruction kept"

#: largest FRC region per axis: a central crop keeps the transform's memory bounded.
FRC_MAX_EDGE = {2: 2048, 3: 256}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellvae blur``."""
    parser.add_argument("original", help="original image: OME-Zarr (or TIFF)")
    parser.add_argument("recon", help="reconstruction of the same shape: OME-Zarr (or TIFF)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="blur map (share kept per window) to write, e.g. BLUR.zarr",
    )
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
    parser.add_argument(
        "--truth",
        metavar="CLEAN",
        help="the noise-free original (OME-Zarr or TIFF), e.g. from cellvae ingest --sample "
        "... --truth-out: also score against it (validation)",
    )
    parser.add_argument(
        "--truth-map",
        metavar="PATH",
        help="where the map against --truth goes (default: the map's name + _truth)",
    )
    camera = parser.add_argument_group(
        "camera (default: the original's metadata, else estimated from the original)"
    )
    camera.add_argument("--gain", type=float, help="output units per detected photon")
    camera.add_argument("--offset", type=float, help="output value at zero photons")
    camera.add_argument("--read-noise", type=float, help="read noise standard deviation, units")
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


def truth_map_path(output: str) -> str:
    """The default path of the map against the truth: ``blurmap.ome.zarr`` ->
    ``blurmap_truth.ome.zarr``."""
    from pathlib import Path

    path = Path(output)
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            return str(path.with_name(name[: -len(suffix)] + "_truth" + suffix))
    return str(path.with_name(name + "_truth"))


def camera_for(args, original, ndim: int):
    """The original's camera model: options first, then its metadata, the rest estimated."""
    import numpy as np

    from cellvae.io.camera import read_camera
    from cellvae.metrics.noise import camera_model

    meta = read_camera(args.original) or {}
    values, sources = {}, {}
    for name in ("gain", "offset", "read_noise"):
        given = getattr(args, name)
        if given is not None:
            values[name], sources[name] = given, "given"
        elif meta.get(name) is not None:
            values[name], sources[name] = meta[name], "metadata"
    quantised = np.dtype(original.dtype).kind in "ui"
    camera = camera_model(original, ndim, sources=sources, quantised=quantised, **values)
    if "metadata" in sources.values():
        camera.metadata_source = meta.get("source")
    return camera


def run(args: argparse.Namespace) -> int:
    """Compute the map(s) and summary; write them only when everything has worked."""
    import contextlib
    from pathlib import Path

    import numpy as np

    from cellvae.errors import CellvaeError
    from cellvae.io.atomic import claim_outputs
    from cellvae.metrics.sharpness import frc
    from cellvae.metrics.structure import score_windows
    from cellvae.metrics.windows import window_spectra

    if args.truth_map and not args.truth:
        raise CellvaeError("--truth-map needs --truth (the noise-free original)")
    truth_out = (args.truth_map or truth_map_path(args.output)) if args.truth else None
    outputs = [args.summary, args.output] + ([truth_out] if truth_out else [])
    with contextlib.ExitStack() as stack:
        summary_path, *_ = stack.enter_context(claim_outputs(outputs, args.overwrite))
        axes, voxel, units, origin, original = _open(args.original, stack)
        images = {"reconstruction": (args.recon, *_open(args.recon, stack))}
        if args.truth:
            images["truth"] = (args.truth, *_open(args.truth, stack))
        for path, other_axes, _, _, _, other in images.values():
            if tuple(original.shape) != tuple(other.shape) or axes != other_axes:
                raise CellvaeError(
                    f"{path}: shape {tuple(other.shape)} ({other_axes}) differs from "
                    f"{args.original}: {tuple(original.shape)} ({axes})"
                )
        recon = images["reconstruction"][-1]
        truth = images["truth"][-1] if args.truth else None
        check_comparable(args.original, original, "original")
        check_comparable(args.recon, recon, "reconstruction")
        if truth is not None:
            check_comparable(args.truth, truth, "original")
        spatial = [a for a in axes if a in "zyx"]
        ndim = 2 if args.planewise or len(spatial) == 2 else 3
        sizes = original.shape[-ndim:]
        if args.window > min(sizes):
            hint = "; try --planewise" if ndim == 3 and sizes[0] < args.window else ""
            raise CellvaeError(
                f"--window {args.window} is larger than the image ({sizes}, axes "
                f"{axes[-ndim:]}){hint}"
            )
        camera = camera_for(args, original, ndim)
        spectra = window_spectra(
            original, recon, camera.noise, truth, args.window, args.stride, ndim
        )
        smap = score_windows(spectra, args.cutoff)
        region = _frc_region(tuple(original.shape), ndim)
        curve = frc(np.asarray(original[region]), np.asarray(recon[region]))
        place = (axes, voxel, units, origin, original.shape)
        summary = _write(args, summary_path, truth_out, place, spectra, smap, camera, curve, region)

    print(
        "share of the original's resolvable structure kept: "
        + _fixed3(summary["share_of_resolvable_structure_kept"])
        + f" (1 = all; {summary['windows_with_signal']} of {summary['windows']} windows "
        "have signal above noise)"
    )
    print(summary["resolution_sentence"])
    cam = summary["camera"]
    print(
        "camera: "
        + ", ".join(
            f"{name.replace('_', ' ')} {_fixed3(cam[name], '.3g')} ({cam['sources'][name]})"
            for name in ("gain", "offset", "read_noise")
        )
    )
    if summary.get("truth"):
        t = summary["truth"]
        print(
            f"against the truth: share kept {_fixed3(t['share_of_resolvable_structure_kept'])}, "
            f"reconstruction keeps {t['reconstruction_keeps_text']}, "
            f"map Spearman {_fixed3(t['map_spearman'])}"
        )
    written = f"{Path(args.output)}" + (f", {truth_out}" if truth_out else "")
    print(f"wrote {written} (map {smap.share.shape}) and {summary_path}")
    return 0


def _fixed3(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _write(args, summary_path, truth_out, place, spectra, smap, camera, curve, region) -> dict:
    """Write the map(s) (placed over the image: scale and translation) and the summary."""
    import json
    import os

    import numpy as np

    from cellvae.io.atomic import temporary_path
    from cellvae.io.omezarr import write_image
    from cellvae.io.provenance import current_provenance
    from cellvae.metrics.blur_summary import blur_figures, noisy_hf_ratio, truth_figures

    axes, voxel, units, origin, shape = place
    ndim = smap.ndim
    analysed = axes[-ndim:]
    map_voxel = {a: v * (smap.stride if a in analysed else 1) for a, v in voxel.items()}
    map_origin = {
        a: origin.get(a, 0.0) + (smap.origin_px * v if a in analysed else 0.0)
        for a, v in voxel.items()
    }
    pixel_size = voxel.get(analysed[-1]) if units.get(analysed[-1]) else None
    unit = units.get(analysed[-1]) if pixel_size is not None else None
    hf_global, hf_windows = noisy_hf_ratio(spectra, args.cutoff)
    finite = np.isfinite(hf_windows)
    summary = {
        "original": str(args.original),
        "recon": str(args.recon),
        "truth": None,
        "blur_map": str(args.output),
        "blur_map_meaning": "share of the original's resolvable structure kept per window, "
        "0..1 (1 = all kept); NaN = no signal above noise",
        "axes": axes,
        "shape": list(shape),
        "analysed_axes": analysed,
        "window_px": smap.window,
        "stride_px": smap.stride,
        "map_shape": list(smap.share.shape),
        "map_voxel_size": map_voxel,
        "map_translation": map_origin,
        "units": units,
        "cutoff_fraction_of_nyquist": args.cutoff,
        "cutoff_cycles_per_px": 0.5 * args.cutoff,
        **blur_figures(smap, pixel_size, unit),
        "camera": camera.to_dict(),
        "worst_regions": smap.worst_regions(args.top),
        "worst_regions_ranked_by": "share of the original's resolvable structure kept "
        "(lowest first), among windows whose signal is at least "
        "worst_region_threshold_noise_deviations above noise",
        "global_hf_ratio": hf_global,
        "median_window_hf_ratio": float(np.median(hf_windows[finite])) if finite.any() else None,
        "hf_ratio_meaning": "reconstruction over NOISY original power above the cutoff "
        "(not noise-aware: removed noise counts as lost detail)",
        "frc": {
            **curve.to_dict(),
            "meaning": "reconstruction against the noisy original (not noise-aware)",
            "region": _describe(region),
            "resolution_1_7_px": curve.resolution("1/7"),
            "resolution_half_bit_px": curve.resolution("half-bit"),
        },
        "provenance": current_provenance(),
    }
    if truth_out:
        summary["truth"] = {
            "path": str(args.truth),
            "blur_map": str(truth_out),
            **truth_figures(smap, pixel_size, unit),
        }
    maps = [(args.output, smap.share)]
    if truth_out:
        maps.append((truth_out, smap.truth_share))
    for path, values in maps:
        write_image(
            path,
            values.astype(np.float32),
            axes,
            voxel_size=map_voxel,
            units=units,
            overwrite=args.overwrite,
            translation=map_origin,
        )
    tmp = temporary_path(summary_path)
    tmp.write_text(json.dumps(finite_json(summary), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, summary_path)
    return finite_json(summary)
