"""The training data's units, for images decoded from the latent space.

A decoded image (a prior sample, the z = 0 prototype, an interpolation) has no input to take
its intensity range and voxel size from. It takes those of the data the model was trained on:
a ``cellvae fit`` checkpoint records its data module's ``paths`` and the percentiles that set
each channel's :class:`~cellvae.data.normalize.Quantizer` (``lo``, ``hi``), and the first
training image holds the stored statistics, voxel size and units. Decodings written in those
units can be compared with the data (and with ``cellvae reconstruct``'s output) directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellvae.data.normalize import Quantizer
from cellvae.errors import CellvaeError

#: micrometres per unit, for TIFF resolution tags (NGFF unit names)
MICROMETRES = {
    "angstrom": 1e-4,
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}


@dataclass
class DataUnits:
    """How to write decoded images: intensity mapping, voxel size and units.

    ``quantizers`` map model units back to raw intensities (one per channel); ``voxel_size``
    and ``units`` cover the model's spatial axes (``"yx"`` or ``"zyx"``); ``source`` says
    where they came from (an image path, or the model's level scale when no image is known).
    """

    quantizers: list[Quantizer]
    voxel_size: dict[str, float]
    units: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def record(self) -> dict[str, Any]:
        """A JSON-able description for an output's metadata."""
        return {
            "voxel_size": dict(self.voxel_size),
            "units": dict(self.units),
            "intensity": {
                "source": self.source,
                "lo": [q.lo for q in self.quantizers],
                "hi": [q.hi for q in self.quantizers],
            },
        }


def resolve_recorded(value: str, anchor: Path) -> Path | None:
    """A path recorded as typed on a command line: as it is, or below ``anchor``'s ancestors."""
    given = Path(value)
    if given.exists():
        return given
    if given.is_absolute():
        return None
    return next((a / given for a in anchor.resolve().parents if (a / given).exists()), None)


def training_data(ckpt: str | os.PathLike) -> tuple[Path | None, dict[str, Any]]:
    """The first training image a checkpoint names (if it still exists) and its data settings.

    Reads only the checkpoint's ``datamodule_hyper_parameters`` (memory-mapped, weights are
    not loaded). Paths recorded relative to where ``fit`` ran are also looked for below the
    checkpoint's ancestor folders.
    """
    import torch

    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None, {}
    data = raw.get("datamodule_hyper_parameters") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return None, {}
    paths = data.get("paths") or []
    found = resolve_recorded(str(paths[0]), Path(ckpt)) if paths else None
    return found, dict(data)


def data_units(
    ckpt: str | os.PathLike,
    hparams: dict[str, Any],
    channels: int,
    ndim: int,
    image: str | os.PathLike | None = None,
) -> DataUnits:
    """The intensity mapping, voxel size and units to write a model's decodings in.

    ``image`` (an OME-Zarr written by ``cellvae ingest``) sets them when given; else the
    checkpoint's first training image with the percentiles and channels the training used;
    else the model's integer level scale ``0 .. 2**bits - 1`` and the voxel size the model
    recorded (no units). An ``image`` without intensity statistics is refused in one line.
    """
    from cellvae.io.omezarr import open_image

    bits = int(hparams.get("bits", 8))
    axes = "zyx"[-ndim:]
    settings: dict[str, Any] = {}
    if image is None:
        image, settings = training_data(ckpt)
    if image is not None:
        opened = open_image(image)
        if opened.stats is None:
            raise CellvaeError(f"{image}: no intensity statistics; run cellvae ingest on it")
        low = float(settings.get("low_percentile", 0.1))
        high = float(settings.get("high_percentile", 99.9))
        picked = settings.get("channels") or list(range(channels))
        if len(picked) != channels:
            raise CellvaeError(
                f"{image}: the model takes {channels} channel(s); {len(picked)} are chosen"
            )
        quantizers = [Quantizer.from_stats(opened.stats, int(c), low, high, bits) for c in picked]
        return DataUnits(
            quantizers,
            {a: float(opened.voxel_size.get(a, 1.0)) for a in axes},
            {a: opened.units[a] for a in axes if a in opened.units},
            str(image),
        )
    recorded = hparams.get("voxel_size") or [1.0] * ndim
    return DataUnits(
        [Quantizer(0.0, 2.0**bits - 1, bits)] * channels,
        {a: float(v) for a, v in zip(axes, list(recorded)[-ndim:])},
        {},
        f"model levels 0..{2**bits - 1} (training image not found)",
    )


def resolution_tags(units: DataUnits) -> dict[str, Any]:
    """tifffile ``resolution``/``resolutionunit`` for the y/x voxel size, in pixels per cm.

    Empty when the units are unknown (a voxel of 1 "pixel" says nothing physical).
    """
    unit = units.units.get("x")
    if unit not in MICROMETRES or units.units.get("y") != unit:
        return {}
    cm = MICROMETRES[unit] * 1e-4
    return {
        "resolution": (1 / (units.voxel_size["x"] * cm), 1 / (units.voxel_size["y"] * cm)),
        "resolutionunit": "CENTIMETER",
    }
