"""Convert TIFF / OME-TIFF / OME-Zarr (NGFF 0.4, 0.5, local or at an ``https://`` /
``s3://`` URL) / plain Zarr / vendor files (CZI, ND2, LIF, ... through bioio,
:mod:`cellvae.io.vendor`) into NGFF 0.5 OME-Zarr.

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
import numpy as np

from cellvae.errors import CellvaeError, ConfigError
from cellvae.io.atomic import check_output, output_lock, remove_path, temporary_path
from cellvae.io.axes import check_dtype, ngff_order, normalize_unit, spatial_axes
from cellvae.io.omezarr import create_image, finalize_image, open_image
from cellvae.io.remote import as_location, is_url, name_of
from cellvae.io.stats import check_stats, intensity_stats
from cellvae.io.store import default_chunks, read_dask, store_dask

log = logging.getLogger(__name__)

VoxelArg = dict[str, float] | Sequence[float] | None
#: ordinary picture files, read whole with imageio (they are small by nature)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: TIFF and TIFF-based files, read lazily with tifffile; other files go to bioio
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf2", ".tf8", ".lsm", ".stk")


def _read_picture(path: Path, axes: str | None):
    """Pixels and axes of a PNG / JPEG / BMP / GIF: ``yx`` for grey, ``yxc`` for colour."""
    import imageio.v3 as iio

    from cellvae.io.axes import normalize_axes

    try:
        data = np.asarray(iio.imread(path))
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable picture ({type(err).__name__})") from None
    if data.ndim == 3 and axes is None and data.shape[-1] in (3, 4):
        if data.shape[-1] == 4 and (data[..., 3] == data[..., 3].flat[0]).all():
            data = data[..., :3]  # a constant alpha channel carries nothing
        axes = "yxc"
    default = {2: "yx", 3: "zyx"}.get(data.ndim)
    if axes is None and default is None:
        raise CellvaeError(f"{path}: {data.ndim}-D picture; give its axes with --axes")
    return data, normalize_axes(axes or default, data.ndim, source=str(path))


@contextmanager
def _open_source(
    path: Path | str, axes: str | None, series: int, scene: str | None = None
) -> Iterator[tuple[da.Array, str, dict[str, float], dict[str, str], list[str] | None]]:
    """Yield ``(data, axes, voxel_size, units, channel_names)`` of any input, lazily."""
    if is_url(path):  # a remote OME-Zarr: its chunks stream in as they are copied
        image = open_image(path, axes=axes)
        yield image.to_dask(), image.axes, image.voxel_size, image.units, image.channel_names
        return
    if not path.exists():
        raise CellvaeError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix.lower() == ".zarr":
        image = open_image(path, axes=axes)
        yield image.to_dask(), image.axes, image.voxel_size, image.units, image.channel_names
        return
    if path.suffix.lower() in PICTURE_SUFFIXES:
        data, ax = _read_picture(path, axes)
        yield da.from_array(data), ax, {}, {}, None
        return
    if path.suffix.lower() not in TIFF_SUFFIXES:  # CZI, ND2, LIF, ...: bioio's readers
        from cellvae.io.vendor import open_vendor

        if axes is not None:
            raise ConfigError(f"--axes: {path.name} names its own axes; leave --axes out")
        with open_vendor(path, scene) as image:
            yield image.data, image.axes, image.voxel_size, image.units, image.channel_names
        return
    if scene is not None:
        if not str(scene).isdigit():
            raise ConfigError(f"--scene: {scene!r}; the series of a TIFF are numbered 0, 1, ...")
        series = int(scene)
    from cellvae.io.tiff import open_tiff

    with open_tiff(path, series=series, axes=axes) as (meta, data):
        yield data, meta.axes, meta.voxel_size, meta.units, meta.channel_names


def _spatial_values(
    name: str, values: VoxelArg, axes: str, drop_z: bool = False, source: str = "the image"
) -> dict[str, float]:
    """A per-axis dict from a dict or from values listed in ``Z Y X`` order.

    A count of values that differs from the number of spatial axes is refused, except that
    ``drop_z`` lets a 2D image ignore the first of three values (harmless for chunk sides; a
    voxel size must never lose a value silently).
    """
    if values is None:
        return {}
    space = spatial_axes(axes)
    if isinstance(values, dict):
        out = {k.lower(): v for k, v in values.items()}
    else:
        values = list(values)
        if drop_z and len(values) == 3 and len(space) == 2:
            values = values[1:]
        if len(values) != len(space):
            raise ConfigError(
                f"{name}: {len(values)} values given but {source} has {len(space)} spatial "
                f"axes; give {len(space)}, in the order {' '.join(space.upper())}"
            )
        out = dict(zip(space, values))
    unknown = set(out) - set(space)
    if unknown:
        raise ConfigError(f"{name}: axes {sorted(unknown)} are not spatial axes of {axes!r}")
    return out


def _chunks(chunks: VoxelArg, shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    given = _spatial_values("chunks", chunks, axes, drop_z=True)
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
    unit: str | None = None,
    scene: str | int | None = None,
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
    scene : which scene (position, region) of a CZI / ND2 / LIF / ... file read through bioio
        (:mod:`cellvae.io.vendor`), by index or name; default the first. For a TIFF, the
        series number.
    unit : unit of ``voxel_size`` (e.g. ``"nanometer"``, ``"Å"``); default micrometre. Units
        stored in the input's metadata are kept as they are.
    """
    if unit is not None and voxel_size is None:
        raise ConfigError("unit: give the voxel size it applies to (--voxel-size)")
    src, out = as_location(input), check_output(output, overwrite)
    if not is_url(src) and src.resolve() == out.resolve():
        raise CellvaeError(f"{out}: output must differ from the input")
    with output_lock(out):
        _ingest_locked(src, out, axes, voxel_size, unit, chunks, overwrite, series, progress, scene)
    log.info("ingested %s -> %s", src, out)
    return out


def _ingest_locked(
    src: Path | str,
    out: Path,
    axes: str | None,
    voxel_size: VoxelArg,
    given_unit: str | None,
    chunks: VoxelArg,
    overwrite: bool,
    series: int,
    progress: bool,
    scene: str | int | None = None,
) -> None:
    """:func:`ingest` once the output is locked against other writers."""
    check_output(out, overwrite)  # another writer may have finished it meanwhile
    tmp = temporary_path(out)
    try:
        with _open_source(src, axes, series, scene) as (data, ax, voxel, units, names):
            check_dtype(data.dtype, str(src))
            order = ngff_order(ax)
            data = data.transpose([ax.index(a) for a in order])
            given = _spatial_values("voxel_size", voxel_size, order, source=str(src))
            if given:
                unit = normalize_unit(given_unit) or "micrometer"
                units = {a: u for a, u in units.items() if a not in given} | {
                    a: unit for a in given
                }
            voxel = {a: float(given.get(a, voxel.get(a, 1.0))) for a in spatial_axes(order)}
            target = create_image(
                out,
                data.shape,
                data.dtype,
                order,
                voxel_size=voxel,
                chunks=_chunks(chunks, data.shape, order),
                shards="auto",
                units=units,
                channel_names=names,
            )
            store_dask(data, target, progress=progress, desc=f"ingest {name_of(src)}")
        # blocks of >= 64 KiB: the default chunks as they are, small ones grouped (the
        # percentiles of large images come from random blocks, so blocks stay small)
        stats = _stats(read_dask(target, budget=2**16), order, progress)
        check_stats(stats, str(src))
        finalize_image(tmp, out, stats=stats, overwrite=overwrite, progress=progress)
    except CellvaeError:
        remove_path(tmp)
        raise
    except (OSError, ValueError, EOFError) as err:
        remove_path(tmp)
        name = str(getattr(err, "filename", None) or "")
        if name.startswith(str(out)):  # a write failed: the output is to blame, not the input
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise CellvaeError(f"{out}: cannot write ({reason})") from None
        raise CellvaeError(f"{src}: failed to read ({type(err).__name__}: {err})") from None
    except BaseException:
        remove_path(tmp)
        raise


def _stats(data: da.Array, axes: str, progress: bool) -> dict:
    if not progress:
        return intensity_stats(data, axes)
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc="statistics", leave=False):
        return intensity_stats(data, axes)
