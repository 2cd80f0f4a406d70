"""Open and write OME-Zarr images (NGFF 0.4 and 0.5 in, NGFF 0.5 / Zarr v3 out).

Opening reads only metadata; the pixel array is opened on first use of
:attr:`OMEImage.array`, so an :class:`OMEImage` is cheap to pickle into DataLoader workers
(Zarr v3 runs an asyncio thread that must not be started in a parent before it forks).

Writing goes through ``<name>.partial`` (:mod:`cellvae.io.atomic`): level 0 is stored first
(by :func:`write_image` from an array, or chunk by chunk after :func:`create_image`), then
:func:`finalize_image` builds the pyramid from the stored level, writes the multiscale metadata
through ome-zarr-py and renames the image to its final name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import zarr

from cellvae.errors import CellvaeError, ConfigError
from cellvae.io.atomic import atomic_output, commit, remove_path, temporary_path
from cellvae.io.axes import check_dtype, ngff_order, normalize_axes, normalize_unit
from cellvae.io.pyramid import downsample, plan_pyramid
from cellvae.io.remote import as_location, is_url, join, zarr_target
from cellvae.io.store import default_chunks, default_shards, read_dask, store_dask

STATS_KEY = "cellvae"
STATS_VERSION = 1


@dataclass
class OMEImage:
    """A lazily opened image: metadata now, pixels on first access of :attr:`array`.

    Attributes
    ----------
    path : the image group (or plain array): a local :class:`Path`, or a URL string
        (``https://``, ``s3://``; see :mod:`cellvae.io.remote`) whose chunks are streamed.
    axes : lower-case axis letters in storage order, e.g. ``"zyx"``, ``"czyx"``.
    shape, dtype : of the chosen level.
    voxel_size : physical size of a voxel of the chosen level per spatial axis.
    units : physical unit per spatial axis (NGFF names, e.g. ``"micrometer"``) where known.
    stats : the intensity statistics stored by ingest (see :mod:`cellvae.io.stats`), or None.
    translation : physical position of the centre of the chosen level's first voxel per
        spatial axis (NGFF ``translation``; 0 where none is stored).
    channel_names : one name per channel (NGFF ``omero`` labels), or None.
    levels : paths of the pyramid levels inside the group, finest first (``[""]`` for a
        plain array).
    level : index of the chosen level in ``levels``.
    """

    path: Path | str
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    voxel_size: dict[str, float]
    units: dict[str, str] = field(default_factory=dict)
    stats: dict | None = None
    levels: list[str] = field(default_factory=lambda: [""])
    level: int = 0
    translation: dict[str, float] = field(default_factory=dict)
    channel_names: list[str] | None = None
    _array: zarr.Array | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ndim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return sum(a in "zyx" for a in self.axes)

    @property
    def array_path(self) -> Path | str:
        """Path (or URL) of the zarr array of the chosen level."""
        return join(self.path, self.levels[self.level])

    @property
    def array(self) -> zarr.Array:
        """The zarr array of the chosen level, opened read-only on first access (a URL's
        chunks are fetched as they are read)."""
        if self._array is None:
            self._array = zarr.open_array(store=zarr_target(self.array_path), mode="r")
        return self._array

    def to_dask(self, chunks: Any = None) -> da.Array:
        """A dask view of the chosen level, in blocks of whole stored chunks of ~64 MiB
        (:func:`cellvae.io.store.read_dask`) unless ``chunks`` is given."""
        return da.from_zarr(self.array, chunks=chunks) if chunks else read_dask(self.array)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        return state


#: files that are images but not Zarr: ``cellvae ingest`` converts them
CONVERTIBLE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _open_node(path: Path | str) -> zarr.Group | zarr.Array:
    if is_url(path):
        return _open_remote_node(path)
    if not path.exists():
        raise CellvaeError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix.lower() in CONVERTIBLE_SUFFIXES:
        raise CellvaeError(
            f"{path}: an image file, not OME-Zarr; convert it first with "
            f"'cellvae ingest {path} -o {path.with_suffix('')}.ome.zarr'"
        )
    try:
        return zarr.open(store=str(path), mode="r")
    except Exception as err:
        raise CellvaeError(f"{path}: not a readable Zarr store ({type(err).__name__})") from None


def _open_remote_node(url: str) -> zarr.Group | zarr.Array:
    """The group or array at a URL; a missing one, or one that cannot be read, is one line."""
    target = zarr_target(url)
    try:
        return zarr.open(store=target, mode="r")
    except CellvaeError:
        raise
    except FileNotFoundError:
        raise CellvaeError(f"{url}: no Zarr group or array there") from None
    except Exception as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0]}" if str(err) else ""
        reason = reason or type(err).__name__
        raise CellvaeError(f"{url}: not a readable Zarr store ({reason})") from None


def _ome_attrs(group: zarr.Group) -> dict:
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", attrs))


def _scale_of(transforms: list[dict] | None, ndim: int) -> np.ndarray:
    scale = np.ones(ndim)
    for t in transforms or []:
        if t.get("type") == "scale" and "scale" in t:
            scale = scale * np.asarray(t["scale"], dtype=float)
    return scale


def _translation_of(transforms: list[dict] | None, ndim: int) -> np.ndarray:
    shift = np.zeros(ndim)
    for t in transforms or []:
        if t.get("type") == "translation" and "translation" in t:
            shift = shift + np.asarray(t["translation"], dtype=float)
    return shift


def _channel_names(attrs: dict) -> list[str] | None:
    channels = attrs.get("omero", {}).get("channels") if isinstance(attrs, dict) else None
    names = [c.get("label") for c in channels or [] if isinstance(c, dict)]
    return [str(n) for n in names] if names and all(n is not None for n in names) else None


def read_stats(group: zarr.Group) -> dict | None:
    """The inner ``stats`` dict stored by :func:`write_stats`, or None."""
    entry = dict(group.attrs).get(STATS_KEY)
    return dict(entry["stats"]) if isinstance(entry, dict) and "stats" in entry else None


def read_translation(attrs: dict, level: int = 0) -> dict[str, float]:
    """Per spatial axis translation of ``level`` from NGFF multiscales attributes."""
    ms = attrs["multiscales"][0]
    names = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
    shift = _translation_of(ms["datasets"][level].get("coordinateTransformations"), len(names))
    return {a: float(t) for a, t in zip(names, shift) if a in "zyx"}


def _from_multiscales(
    path: Path | str, group: zarr.Group, level: int, axes: str | None
) -> OMEImage:
    ms = _ome_attrs(group)["multiscales"][0]
    stored = "".join(a["name"] if isinstance(a, dict) else a for a in ms.get("axes", []))
    levels = [d["path"] for d in ms["datasets"]]
    if not -len(levels) <= level < len(levels):
        raise ConfigError(f"level: {level} out of range; {path} has {len(levels)} levels")
    level = level % len(levels)
    arr = group[levels[level]]
    ax = normalize_axes(axes or stored or "", arr.ndim, source=str(path))
    units = {}
    for a in ms.get("axes", []):
        unit = normalize_unit(a.get("unit")) if isinstance(a, dict) else None
        if unit and a["name"] in "zyx":
            units[a["name"]] = unit
    scale = _scale_of(ms["datasets"][level].get("coordinateTransformations"), arr.ndim)
    scale = scale * _scale_of(ms.get("coordinateTransformations"), arr.ndim)
    voxel = {a: float(s) for a, s in zip(ax, scale) if a in "zyx"}
    ome = _ome_attrs(group)
    return OMEImage(
        path=path,
        axes=ax,
        shape=tuple(arr.shape),
        dtype=np.dtype(arr.dtype),
        voxel_size=voxel,
        units=units,
        stats=read_stats(group),
        levels=levels,
        level=level,
        translation=read_translation(ome, level) if ms.get("axes") else {},
        channel_names=_channel_names(ome),
    )


def open_image(path: str | os.PathLike, level: int = 0, axes: str | None = None) -> OMEImage:
    """Open an NGFF 0.4/0.5 multiscale image, or a plain Zarr array when ``axes`` is given.

    ``path`` is a local path or an ``https://`` / ``s3://`` URL (:mod:`cellvae.io.remote`).
    Only metadata is read; pixels are read through :attr:`OMEImage.array` or
    :meth:`OMEImage.to_dask`. ``axes`` (e.g. ``"zyx"``) overrides stored axis names.
    """
    path = as_location(path)
    node = _open_node(path)
    if isinstance(node, zarr.Array):
        if axes is None:
            raise CellvaeError(
                f"{path}: plain Zarr array without OME metadata; give its axes (e.g. --axes ZYX)"
            )
        ax = normalize_axes(axes, node.ndim, source=str(path))
        return OMEImage(
            path=path,
            axes=ax,
            shape=tuple(node.shape),
            dtype=np.dtype(node.dtype),
            voxel_size={a: 1.0 for a in ax if a in "zyx"},
        )
    if "multiscales" not in _ome_attrs(node):
        raise CellvaeError(f"{path}: Zarr group without OME-Zarr multiscales metadata")
    return _from_multiscales(path, node, level, axes)


def open_labels(path: str | os.PathLike, name: str | None = None, axes: str | None = None):
    """Open a label image lazily: a TIFF, an OME-Zarr image, or ``image.zarr/labels/<name>``.

    An image group with a ``labels`` subgroup opens its first label image (or the one called
    ``name``); any other image opens as it is.
    Returns an :class:`OMEImage` (Zarr) or a :class:`cellvae.io.tiff.TiffMeta` (TIFF); both
    have ``axes``, ``shape``, ``dtype``, ``voxel_size`` and ``to_dask()``.
    """
    path = as_location(path)
    if not is_url(path) and path.suffix.lower() in (".tif", ".tiff"):
        from cellvae.io.tiff import read_tiff_meta

        return read_tiff_meta(path, axes=axes)
    node = _open_node(path)
    if isinstance(node, zarr.Group):
        if "labels" in node:
            names = _ome_attrs(node["labels"]).get("labels", [])
            if not names:
                raise CellvaeError(f"{path}: labels group lists no label images")
            pick = name or names[0]
            if pick not in names:
                raise CellvaeError(f"{path}: no label image {pick!r}; found {names}")
            return open_image(join(path, "labels", pick), axes=axes)
    return open_image(path, axes=axes)


def write_stats(path: str | os.PathLike, stats: dict) -> None:
    """Store intensity statistics under the image group's ``cellvae`` attribute."""
    group = zarr.open_group(str(path), mode="r+")
    entry = dict(group.attrs.get(STATS_KEY, {}))  # keep provenance stored beside the stats
    group.attrs[STATS_KEY] = {**entry, "version": STATS_VERSION, "stats": stats}


def _check_write_args(
    shape: tuple[int, ...], dtype: Any, axes: str, voxel_size: dict[str, float] | None
) -> tuple[str, dict[str, float]]:
    ax = normalize_axes(axes, len(shape))
    if ax != ngff_order(ax):
        raise CellvaeError(
            f"axes {ax!r} are not in NGFF order; transpose the data to {ngff_order(ax)!r}"
        )
    check_dtype(np.dtype(dtype), "image")
    voxel = {a: 1.0 for a in ax if a in "zyx"}
    for a, v in (voxel_size or {}).items():
        if a not in voxel:
            raise ConfigError(f"voxel_size: axis {a!r} is not a spatial axis of {ax!r}")
        if not v > 0:
            raise ConfigError(f"voxel_size: {a}={v} must be positive")
        voxel[a] = float(v)
    return ax, voxel


def _write_metadata(
    group_path: Path,
    axes: str,
    voxel_size: dict[str, float],
    units: dict[str, str],
    factors: list[dict[str, int]],
    translation: dict[str, float] | None = None,
    method: str = "mean",
    channel_names: list[str] | None = None,
) -> None:
    """Multiscale metadata (NGFF 0.5) for levels ``s0..`` with cumulative ``factors``.

    ``translation`` places the centre of level 0's first voxel; a level averaged over ``f``
    voxels is centred on their middle, ``(f - 1) / 2`` voxels of level 0 further on, so every
    level overlays level 0 exactly (``nearest`` keeps the first voxel: no shift).
    """
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    origin = translation or {}
    datasets = []
    for i, fac in enumerate(factors):
        scale = [voxel_size.get(a, 1.0) * fac.get(a, 1) for a in axes]
        spread = (lambda f: (f - 1) / 2) if method == "mean" else (lambda f: 0.0)
        shift = [origin.get(a, 0.0) + spread(fac.get(a, 1)) * voxel_size.get(a, 1.0) for a in axes]
        transforms: list[dict] = [{"type": "scale", "scale": scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": shift})
        datasets.append({"path": f"s{i}", "coordinateTransformations": transforms})
    group = zarr.open_group(str(group_path), mode="r+")
    extra = {}
    if channel_names:
        extra["metadata"] = {"omero": {"channels": [{"label": n} for n in channel_names]}}
    write_multiscales_metadata(
        group,
        datasets=datasets,
        fmt=FormatV05(),
        axes=list(axes),
        axes_units={a: u for a, u in units.items() if a in axes} or None,
        name=group_path.name.removesuffix(".partial"),
        **extra,
    )


def _create_level0(
    tmp: Path,
    shape: tuple[int, ...],
    dtype: Any,
    axes: str,
    voxel_size: dict[str, float],
    units: dict[str, str] | None,
    chunks: tuple[int, ...] | None,
    shards: tuple[int, ...] | Literal["auto"] | None,
    translation: dict[str, float] | None = None,
    channel_names: list[str] | None = None,
) -> zarr.Array:
    if channel_names is not None:
        n_channels = shape[axes.index("c")] if "c" in axes else 1
        if len(channel_names) != n_channels:
            raise ConfigError(
                f"channel_names: {len(channel_names)} names for {n_channels} channel(s)"
            )
    chunks = tuple(chunks) if chunks else default_chunks(shape, axes)
    if len(chunks) != len(shape):
        raise ConfigError(f"chunks: {chunks} has {len(chunks)} entries for {len(shape)} axes")
    chunks = tuple(min(int(c), s) if s else int(c) for c, s in zip(chunks, shape))
    if shards == "auto":
        shards = default_shards(shape, chunks, axes)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    arr = group.create_array(
        "s0",
        shape=shape,
        dtype=np.dtype(dtype),
        chunks=chunks,
        shards=shards,
        dimension_names=list(axes),
        fill_value=0,
    )
    clean_units = {a: u for a, u in ((a, normalize_unit(u)) for a, u in (units or {}).items()) if u}
    _write_metadata(
        tmp, axes, voxel_size, clean_units, [{}], translation, channel_names=channel_names
    )
    return arr


def create_image(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    axes: str,
    voxel_size: dict[str, float] | None = None,
    chunks: tuple[int, ...] | None = None,
    units: dict[str, str] | None = None,
    shards: tuple[int, ...] | Literal["auto"] | None = None,
    resume: bool = False,
    translation: dict[str, float] | None = None,
    channel_names: list[str] | None = None,
) -> zarr.Array:
    """A writable level-0 array of a new image under ``temporary_path(path)``.

    Fill it (chunk by chunk, in any order), then call :func:`finalize_image`. With
    ``resume=True`` an existing temporary image of the same shape and dtype is reopened (its
    written chunks kept) instead of being replaced; otherwise any leftover is discarded.
    ``translation`` (physical units per spatial axis) places the first voxel's centre;
    ``channel_names`` label the channels (NGFF ``omero``). ``shards="auto"`` adds shards when
    the array has many chunks (:func:`cellvae.io.store.default_shards`).
    """
    shape = tuple(int(s) for s in shape)
    ax, voxel = _check_write_args(shape, dtype, axes, voxel_size)
    tmp = temporary_path(path)
    if resume and tmp.exists():
        try:
            arr = zarr.open_array(str(tmp / "s0"), mode="r+")
        except Exception:
            arr = None
        if arr is not None and arr.shape == shape and arr.dtype == np.dtype(dtype):
            return arr
    remove_path(tmp)
    return _create_level0(
        tmp, shape, dtype, ax, voxel, units, chunks, shards, translation, channel_names
    )


def _build_levels(
    tmp: Path, n_levels: int | None, method: str, progress: bool
) -> list[dict[str, int]]:
    image = open_image(tmp)
    src = image.array
    for name in list(zarr.open_group(str(tmp), mode="r").array_keys()):
        if name != "s0":
            remove_path(tmp / name)
    steps = plan_pyramid(image.shape, image.axes, image.voxel_size, n_levels)
    total: dict[str, int] = {}
    cumulative = [dict(total)]
    for i, step in enumerate(steps, start=1):
        small = downsample(read_dask(src), image.axes, step, method)
        chunks = tuple(min(c, s) for c, s in zip(src.chunks, small.shape))
        group = zarr.open_group(str(tmp), mode="r+")
        dst = group.create_array(
            f"s{i}",
            shape=small.shape,
            dtype=src.dtype,
            chunks=chunks,
            shards=default_shards(small.shape, chunks, image.axes),
            dimension_names=list(image.axes),
            fill_value=0,
        )
        store_dask(small, dst, progress=progress, desc=f"level {i}")
        total = {a: total.get(a, 1) * step.get(a, 1) for a in image.axes}
        cumulative.append(dict(total))
        src = dst
    names = image.channel_names or _inherited_channel_names(image)
    _write_metadata(
        tmp, image.axes, image.voxel_size, image.units, cumulative, image.translation, method, names
    )
    return cumulative


def _inherited_channel_names(image: OMEImage) -> list[str] | None:
    """The channel names of the input image of the running verb, if it has as many channels.

    So that a reconstruction (or any image made from one input) carries its input's names.
    """
    from cellvae.io.provenance import current_provenance

    record = current_provenance() or {}
    source = record.get("inputs", {}).get("input")
    if "c" not in image.axes or not source or not (is_url(source) or Path(source).is_dir()):
        return None
    try:
        names = open_image(source).channel_names
    except CellvaeError:
        return None
    return names if names and len(names) == image.shape[image.axes.index("c")] else None


def finalize_image(
    tmp_path: str | os.PathLike,
    final_path: str | os.PathLike,
    stats: dict | None = None,
    n_levels: int | None = None,
    method: Literal["mean", "nearest"] = "mean",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Build the pyramid of a filled :func:`create_image`, write metadata, rename to final.

    ``method`` is ``"mean"`` for intensities and ``"nearest"`` for label images.
    """
    from cellvae.io.provenance import write_zarr_provenance

    tmp = Path(tmp_path)
    try:
        _build_levels(tmp, n_levels, method, progress)
        if stats is not None:
            write_stats(tmp, stats)
        write_zarr_provenance(tmp)
    except KeyboardInterrupt:
        raise
    except BaseException:
        for name in list(zarr.open_group(str(tmp), mode="r").array_keys()):
            if name != "s0":
                remove_path(tmp / name)
        raise
    return commit(tmp, final_path, overwrite)


def write_image(
    path: str | os.PathLike,
    data: np.ndarray | da.Array,
    axes: str,
    voxel_size: dict[str, float] | None = None,
    units: dict[str, str] | None = None,
    chunks: tuple[int, ...] | None = None,
    stats: dict | None = None,
    overwrite: bool = False,
    n_levels: int | None = None,
    shards: tuple[int, ...] | Literal["auto"] | None = "auto",
    method: Literal["mean", "nearest"] = "mean",
    progress: bool = False,
    translation: dict[str, float] | None = None,
    channel_names: list[str] | None = None,
) -> Path:
    """Write ``data`` (axes in NGFF order, e.g. ``"czyx"``) as an NGFF 0.5 multiscale image.

    Chunks default to 64³ (3D) or 256² (2D) and 1 along ``t``/``c``; shards are added for
    volumes with many chunks. The pyramid halves y, x (and z while it is not coarser than
    y, x) until the smallest of y, x is below 64, unless ``n_levels`` is given. Streams with
    dask; the image appears at ``path`` only when complete. ``translation`` (physical units
    per spatial axis) places the first voxel's centre. The running verb's provenance
    (:mod:`cellvae.io.provenance`) is stored with it.
    """
    from cellvae.io.provenance import write_zarr_provenance

    data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    shape = tuple(int(s) for s in data.shape)
    ax, voxel = _check_write_args(shape, data.dtype, axes, voxel_size)
    with atomic_output(path, overwrite) as tmp:
        arr = _create_level0(
            tmp, shape, data.dtype, ax, voxel, units, chunks, shards, translation, channel_names
        )
        store_dask(data, arr, progress=progress, desc="level 0")
        _build_levels(tmp, n_levels, method, progress)
        if stats is not None:
            write_stats(tmp, stats)
        write_zarr_provenance(tmp)
    return Path(path)
