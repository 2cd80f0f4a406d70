"""Convert TIFF / OME-TIFF / OME-Zarr (NGFF 0.4, 0.5) / plain Zarr into NGFF 0.5 OME-Zarr.

The conversion streams with dask (peak memory: a few blocks of ~64 MiB, whatever the input
size): level 0 is copied into ``<output>.partial``, intensity statistics are computed from it
(:mod:`cellvae.io.stats`), the pyramid and metadata are written, and the folder is renamed to
``output``. Any failure removes the partial output.

Images that cannot be normalised are refused: all-NaN images and constant images (a constant
channel has no intensity range; see :func:`cellvae.io.stats.check_stats`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dask.array as da

from cellvae.errors import CellvaeError, ConfigError
from cellvae.io.atomic import check_output, remove_path, temporary_path
from cellvae.io.axes import check_dtype, ngff_order, spatial_axes
from cellvae.io.omezarr import create_image, finalize_image, open_image
from cellvae.io.stats import check_stats, intensity_stats
from cellvae.io.store import default_chunks, store_dask

log = logging.getLogger(__name__)

VoxelArg = dict[str, float] | Sequence[float] | None


@contextmanager
def _open_source(
    path: Path, axes: str | None, series: int
) -> Iterator[tuple[da.Array, str, dict[str, float], dict[str, str]]]:
    """Yield ``(data, axes, voxel_size, units)`` of any supported input, lazily."""
    if not path.exists():
        raise CellvaeError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix.lower() == ".zarr":
        image = open_image(path, axes=axes)
        yield image.to_dask(), image.axes, image.voxel_size, image.units
        return
    from cellvae.io.tiff import open_tiff

    with open_tiff(path, series=series, axes=axes) as (meta, data):
        yield data, meta.axes, meta.voxel_size, meta.units


def _spatial_values(name: str, values: VoxelArg, axes: str) -> dict[str, float]:
    """A per-axis dict from a dict or from values listed in ``Z Y X`` order."""
    if values is None:
        return {}
    space = spatial_axes(axes)
    if isinstance(values, dict):
        out = {k.lower(): v for k, v in values.items()}
    else:
        values = list(values)
        if len(values) == 3 and len(space) == 2:
            values = values[1:]
        if len(values) != len(space):
            raise ConfigError(
                f"{name}: {len(values)} values given but the image has spatial axes {space!r}"
            )
        out = dict(zip(space, values))
    unknown = set(out) - set(space)
    if unknown:
        raise ConfigError(f"{name}: axes {sorted(unknown)} are not spatial axes of {axes!r}")
    return out


def _chunks(chunks: VoxelArg, shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    given = _spatial_values("chunks", chunks, axes)
    base = default_chunks(shape, axes)
    out = tuple(int(given.get(a, c)) for a, c in zip(axes, base))
    if any(c < 1 for c in out):
        raise ConfigError(f"chunks: {out} must be positive")
    return out


def ingest(
    input: str | os.PathLike,
    output: str | os.PathLike,
    axes: str | None = None,
    voxel_size: VoxelArg = None,
    chunks: VoxelArg = None,
    overwrite: bool = False,
    series: int = 0,
    progress: bool = True,
) -> Path:
    """Convert ``input`` to an NGFF 0.5 multiscale image at ``output``; returns ``output``.

    Parameters
    ----------
    axes : axes of the input in storage order (e.g. ``"ZYX"``, ``"TCZYX"``); inferred from
        metadata when omitted. Data are transposed to NGFF order (``t, c, z, y, x``).
    voxel_size : physical voxel size in micrometres, ``{"z": .., "y": .., "x": ..}`` or values in
        ``Z Y X`` order; overrides metadata; axes without a value keep the metadata's (else 1).
    chunks : chunk size per spatial axis (dict or ``Z Y X`` values); default 64³ / 256².
    overwrite : replace an existing ``output`` (only once the new image is complete).
    series : which series of a multi-series TIFF.
    """
    src, out = Path(input), check_output(output, overwrite)
    if src.resolve() == out.resolve():
        raise CellvaeError(f"{out}: output must differ from the input")
    tmp = temporary_path(out)
    try:
        with _open_source(src, axes, series) as (data, ax, voxel, units):
            check_dtype(data.dtype, str(src))
            order = ngff_order(ax)
            data = data.transpose([ax.index(a) for a in order])
            given = _spatial_values("voxel_size", voxel_size, order)
            if given:
                units = {a: u for a, u in units.items() if a not in given} | {
                    a: "micrometer" for a in given
                }
            voxel = {a: float(given.get(a, voxel.get(a, 1.0))) for a in spatial_axes(order)}
            target = create_image(
                out,
                data.shape,
                data.dtype,
                order,
                voxel_size=voxel,
                chunks=_chunks(chunks, data.shape, order),
                units=units,
            )
            store_dask(data, target, progress=progress, desc=f"ingest {src.name}")
        stats = _stats(da.from_zarr(target), order, progress)
        check_stats(stats, str(src))
        finalize_image(tmp, out, stats=stats, overwrite=overwrite, progress=progress)
    except CellvaeError:
        remove_path(tmp)
        raise
    except (OSError, ValueError, EOFError) as err:
        remove_path(tmp)
        raise CellvaeError(f"{src}: failed to read ({type(err).__name__}: {err})") from None
    except BaseException:
        remove_path(tmp)
        raise
    log.info("ingested %s -> %s", src, out)
    return out


def _stats(data: da.Array, axes: str, progress: bool) -> dict:
    if not progress:
        return intensity_stats(data, axes)
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc="statistics", leave=False):
        return intensity_stats(data, axes)
