"""Images from the latent space: prior samples, the z = 0 prototype, interpolations.

Every function returns the likelihood mean in model units ``x`` in [-1, 1], shaped
``(N, C, *patch)``; :func:`to_stack` maps them to raw intensities with a :class:`Quantizer`
per channel: the training data's (:func:`cellvae.inference.units.data_units`, which the
checkpoint leads to), so that a decoding can be compared with the data, or, when no
training image is known, the integer level scale ``0 .. 2**bits - 1``. :func:`write_stack`
records the units, intensity source and voxel size with the stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError
from cellvae.inference.model import to_raw
from cellvae.inference.units import DataUnits, resolution_tags


def _mean(vae: torch.nn.Module, params: torch.Tensor) -> np.ndarray:
    return vae.likelihood.mean(params).float().cpu().numpy()


@torch.no_grad()
def sample(
    vae: torch.nn.Module, n: int, patch: Sequence[int], temperature: float = 1.0
) -> np.ndarray:
    """``n`` draws from the prior, latent std scaled by ``temperature``, ``(n, C, *patch)``."""
    if n < 1 or temperature < 0:
        raise CellvaeError(f"-n must be >= 1 and --temperature >= 0; got {n}, {temperature}")
    return _mean(vae, vae.sample_params(n, tuple(patch), temperature))


@torch.no_grad()
def prototype(vae: torch.nn.Module, patch: Sequence[int]) -> np.ndarray:
    """The image decoded at ``z = 0`` (every group at its prior mean), ``(1, C, *patch)``."""
    return _mean(vae, vae.prototype_params(tuple(patch)))


@torch.no_grad()
def interpolate(
    vae: torch.nn.Module, a: np.ndarray, b: np.ndarray, steps: int, patch: Sequence[int]
) -> np.ndarray:
    """Decodings of ``(1 - t) a + t b`` for ``steps`` values of ``t`` from 0 to 1 inclusive.

    ``a``, ``b`` are top-group codes ``(D,)``; the result is ``(steps, C, *patch)``.
    """
    a, b = np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()
    if a.shape != b.shape:
        raise CellvaeError(f"--interpolate: codes of different lengths {a.size} and {b.size}")
    if steps < 2:
        raise CellvaeError(f"--steps: {steps} must be >= 2")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    codes = torch.from_numpy((1 - t) * a + t * b)
    return _mean(vae, vae.decode_embedding(codes, tuple(patch)))


def table_codes(
    table: pd.DataFrame, labels: Sequence[int], id_column: str = "label", source: str = "table"
) -> list[np.ndarray]:
    """The ``z_mean_*`` columns of the cells whose ``id_column`` holds these label ids.

    ``id_column`` is ``label`` in a ``cellvae embed`` table and ``index`` in napari's
    ``features``; ``source`` names the table in error messages.
    """
    columns = sorted(
        (c for c in table.columns if c.startswith("z_mean_")),
        key=lambda c: int(c.rsplit("_", 1)[1]),
    )
    if id_column not in table or not columns:
        raise CellvaeError(
            f"{source}: not a cellvae embed table (no {id_column} / z_mean_* columns)"
        )
    codes = []
    for label in labels:
        rows = table.loc[table[id_column] == label, columns]
        if rows.empty:
            raise CellvaeError(f"{source}: no cell with label {label}")
        codes.append(rows.to_numpy(np.float32)[0])
    return codes


def codes_of_cells(table_path: str | Path, labels: Sequence[int]) -> list[np.ndarray]:
    """The ``z_mean_*`` columns of the given label ids in a ``cellvae embed`` table."""
    try:
        table = pd.read_parquet(table_path)
    except Exception as err:
        raise CellvaeError(f"{table_path}: not a readable parquet table ({err})") from None
    return table_codes(table, labels, "label", str(table_path))


def to_stack(x: np.ndarray, quantizers: Sequence[Quantizer]) -> np.ndarray:
    """Model units ``(N, C, *S)`` → float32 raw intensities, one channel axis dropped if C = 1."""
    raw = to_raw(x, quantizers)
    return raw[:, 0] if raw.shape[1] == 1 else raw


def stack_axes(stack: np.ndarray, ndim: int) -> str:
    """TIFF axis letters of a ``(N, [C,] [Z,] Y, X)`` stack of ``ndim``-D images.

    The images run along ``T`` (a viewer shows them with a slider), channels along ``C``.
    """
    axes = "T" + ("C" if stack.ndim == ndim + 2 else "") + "ZYX"[3 - ndim :]
    if len(axes) != stack.ndim:
        raise ValueError(f"stack of shape {stack.shape} does not hold {ndim}D images")
    return axes


def write_stack(
    path: str | Path,
    stack: np.ndarray,
    overwrite: bool = False,
    ndim: int | None = None,
    units: DataUnits | None = None,
) -> Path:
    """Write ``(N, [C,] [Z,] Y, X)`` float32 as a TIFF stack, atomically.

    The file's JSON description carries its axes (:func:`stack_axes`; ``ndim`` defaults to
    2 for a 3-axis stack, 3 for a 4-axis one), the running verb's provenance and, with
    ``units``, the voxel size, units and intensity source (``voxel_size``, ``units``,
    ``intensity``); the y/x voxel size also goes into the TIFF resolution tags, which
    ImageJ/Fiji and :func:`cellvae.io.tiff.read_tiff_meta` read.
    """
    import tifffile

    from cellvae.io.atomic import atomic_output
    from cellvae.io.provenance import tiff_metadata

    ndim = ndim or (2 if stack.ndim == 3 else 3)
    metadata = {"axes": stack_axes(stack, ndim), **tiff_metadata()}
    extra = {}
    if units is not None:
        metadata.update(units.record())
        extra = resolution_tags(units)
    with atomic_output(path, overwrite) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(stack, np.float32), metadata=metadata, **extra)
    return Path(path)
