"""A trained cellvae model as a BioImage Model Zoo package (bioimage.io model spec 0.5).

:func:`export_model` writes ``model.zip`` with ``rdf.yaml``, TorchScript weights
(:class:`cellvae.export.module.ExportedVAE`, traced on the model's patch: the normalisation is
in the network, so the package runs anywhere TorchScript runs, without cellvae), test input
and outputs (``.npy``), sample tensors (``.tif``), a cover image, a README with the training
data and bits/dim, citations and the licence. The description is built and validated with
``bioimageio.spec``; :func:`test_package` runs ``bioimageio.core.test_model``, the test the
Model Zoo's CI runs. One package, two or three outputs: the reconstruction, the per-patch
embedding and, for a hierarchical model, the local latents' summary (the rest of the
description ``cellvae embed`` writes per cell).

Inputs have a fixed size, the training patch: a hierarchical model with a global latent reads
the whole tile into its code, so another tile size would give other numbers than
``cellvae reconstruct`` (which uses the same tile by default). Nothing is downloaded: the
description names no URL that validation would fetch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cellvae.errors import CellvaeError
from cellvae.export.files import (
    ExportInfo,
    logged_metrics,
    readme,
    test_tile,
    tile_bits_per_dim,
    write_cover,
)
from cellvae.export.module import ExportedVAE, has_local_summary

#: tolerance the package test allows between the network and its test outputs
ABSOLUTE_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-5
CITATIONS = (
    ("Kingma & Welling (2014), Auto-Encoding Variational Bayes", "10.48550/arXiv.1312.6114"),
    ("Sønderby et al. (2016), Ladder Variational Autoencoders", "10.48550/arXiv.1602.02282"),
    ("Child (2021), Very Deep VAEs", "10.48550/arXiv.2011.10650"),
)


@dataclass
class Exported:
    """What :func:`export_model` wrote: the package and the arrays it was tested with."""

    path: Path
    test_input: np.ndarray
    reconstruction: np.ndarray
    embedding: np.ndarray
    bits_per_dim: float
    local_summary: np.ndarray | None = None  # hierarchical models only


def _require_bioimageio():
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise CellvaeError(
            "cellvae export needs the export extra (bioimageio.spec, bioimageio.core): "
            "pip install 'cellvae[export]'"
        ) from None


def training_data(ckpt: str | os.PathLike) -> dict:
    """The data module's settings saved in a ``cellvae fit`` checkpoint ({} if none)."""
    try:
        saved = torch.load(Path(ckpt), map_location="cpu", weights_only=True)
    except Exception:
        return {}
    data = saved.get("datamodule_hyper_parameters") if isinstance(saved, dict) else None
    return dict(data) if isinstance(data, dict) else {}


def _image_for(ckpt: str, image: str | None, data: dict) -> str:
    """The image that sets the normalisation: ``image``, else the run's first training path."""
    if image is not None:
        return str(image)
    paths = data.get("paths") or []
    if paths and Path(paths[0]).exists():
        return str(paths[0])
    shown = f" ({paths[0]} is not there)" if paths else ""
    raise CellvaeError(
        f"{ckpt}: give the training image with --image IMAGE.ome.zarr{shown}; its stored "
        "statistics set the normalisation built into the package"
    )


def _axes(descr_module, names: str, tile, voxel: dict, units: dict, channels: list[str], out):
    """bioimage.io axes ``batch, channel, *space`` of the input (``out=False``) or output."""
    v = descr_module
    space_cls = v.SpaceOutputAxis if out else v.SpaceInputAxis
    axes = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(c) for c in channels])]
    for a, side in zip(names, tile):
        unit = "micrometer" if units.get(a, "micrometer") == "micrometer" else units[a]
        axes.append(
            space_cls(id=v.AxisId(a), size=int(side), scale=float(voxel.get(a, 1.0)), unit=unit)
        )
    return axes


def _channel_ids(names: list[str] | None, n: int) -> list[str]:
    """Identifier-safe channel names (bioimage.io allows letters, digits and ``_``)."""
    out = []
    for i in range(n):
        raw = (names[i] if names and i < len(names) else f"channel{i}") or f"channel{i}"
        safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(raw))
        out.append(safe if safe and not safe[0].isdigit() else f"c{i}_{safe}")
    return out


def _describe(folder: Path, info: ExportInfo, image, arrays: dict):
    """The bioimage.io ``ModelDescr`` of the files in ``folder``."""
    import bioimageio.spec.model.v0_5 as v
    import tifffile

    for key, array in arrays.items():
        np.save(folder / f"{key}.npy", array)
        tifffile.imwrite(folder / f"{key}.tif", array)
    channels = _channel_ids(image.channel_names, arrays["raw"].shape[1])
    units = image.units
    space = [a for a in image.axes if a in "zyx"][-len(info.tile) :]

    def files(key):
        return {
            "test_tensor": v.FileDescr(source=folder / f"{key}.npy"),
            "sample_tensor": v.FileDescr(source=folder / f"{key}.tif"),
            "data": v.IntervalOrRatioDataDescr(type="float32"),
        }

    inputs = [
        v.InputTensorDescr(
            id=v.TensorId("raw"),
            description="raw intensities, units of the training image",
            axes=_axes(v, space, info.tile, info.voxel_size, units, channels, out=False),
            preprocessing=[v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32"))],
            **files("raw"),
        )
    ]

    def code_axes(prefix: str, n: int):
        names = [v.Identifier(f"{prefix}{i}") for i in range(n)]
        return [v.BatchAxis(), v.ChannelAxis(channel_names=names)]

    outputs = [
        v.OutputTensorDescr(
            id=v.TensorId("reconstruction"),
            description="reconstruction, raw units (as cellvae reconstruct)",
            axes=_axes(v, space, info.tile, info.voxel_size, units, channels, out=True),
            **files("reconstruction"),
        ),
        v.OutputTensorDescr(
            id=v.TensorId("embedding"),
            description="posterior mean of the global latent (as cellvae embed)",
            axes=code_axes("z", info.embedding_dim),
            **files("embedding"),
        ),
    ]
    if info.local_dim:
        outputs.append(
            v.OutputTensorDescr(
                id=v.TensorId("local_summary"),
                description="the local latents' summary (cellvae embed's local_* columns)",
                axes=code_axes("local", info.local_dim),
                **files("local_summary"),
            )
        )
    (folder / "README.md").write_text(readme(info))
    tolerance = v.ReproducibilityTolerance(
        absolute_tolerance=ABSOLUTE_TOLERANCE, relative_tolerance=RELATIVE_TOLERANCE
    )
    return v.ModelDescr(
        name=info.name,
        description=(
            f"cellvae {info.hparams.get('arch')} VAE ({len(info.tile)}D, "
            f"{info.hparams.get('likelihood')}): reconstruction and per-patch embedding"
        ),
        authors=[v.Author(name=a) for a in info.authors],
        cite=[v.CiteEntry(text=text, doi=v.Doi(doi)) for text, doi in CITATIONS],
        license=v.LicenseId("BSD-3-Clause"),
        documentation=v.FileDescr(source=folder / "README.md"),
        covers=[v.FileDescr(source=folder / "cover.png")],
        inputs=inputs,
        outputs=outputs,
        tags=["cellvae", "vae", "variational-autoencoder", f"{len(info.tile)}d", "fluorescence"],
        weights=v.WeightsDescr(
            torchscript=v.TorchscriptWeightsDescr(
                source=folder / "weights.pt",
                pytorch_version=v.Version(torch.__version__.split("+")[0]),
            )
        ),
        config=v.Config(bioimageio=v.BioimageioConfig(reproducibility_tolerance=[tolerance])),
    )


def _trace(network: ExportedVAE, raw: np.ndarray) -> torch.jit.ScriptModule:
    """TorchScript of ``network`` on the tile ``raw``, checked against the eager network."""
    example = torch.from_numpy(raw)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant here
        traced = torch.jit.trace(network, example, check_trace=False)
        eager, scripted = network(example), traced(example)
    for a, b in zip(eager, scripted):
        if not torch.allclose(a, b, atol=ABSOLUTE_TOLERANCE, rtol=RELATIVE_TOLERANCE):
            raise CellvaeError("export: the traced network differs from the model; not exported")
    return traced


def export_model(
    ckpt: str | os.PathLike,
    output: str | os.PathLike,
    image: str | None = None,
    name: str | None = None,
    authors: list[str] | None = None,
    overwrite: bool = False,
) -> Exported:
    """Write the bioimage.io package of ``ckpt`` to ``output`` (a ``.zip``).

    ``image`` (default: the run's first training image) gives the normalisation (its stored
    0.1 / 99.9 percentiles, as ``cellvae reconstruct`` uses them) and the test tile (its
    central patch). The package appears at ``output`` only when complete.
    """
    _require_bioimageio()
    from bioimageio.spec import save_bioimageio_package

    from cellvae.inference.model import default_patch, load_model, quantizers_for
    from cellvae.io.atomic import atomic_output, check_output
    from cellvae.io.omezarr import open_image

    check_output(output, overwrite)
    if Path(output).suffix.lower() != ".zip":
        raise CellvaeError(f"{output}: a bioimage.io package is a .zip file")
    vae, hparams = load_model(ckpt)
    data = training_data(ckpt)
    source = _image_for(str(ckpt), image, data)
    opened = open_image(source)
    tile = default_patch(vae, hparams)
    space = [a for a in opened.axes if a in "zyx"]
    if len(space) < len(tile) or any(
        opened.shape[opened.axes.index(a)] < t for a, t in zip(space[-len(tile) :], tile)
    ):
        raise CellvaeError(f"{source}: smaller than the model's tile {list(tile)}")
    raw = test_tile(opened.array, opened.axes, tile)
    if raw.shape[1] != vae.in_channels:
        raise CellvaeError(
            f"{source}: {raw.shape[1]} channel(s); the model takes {vae.in_channels}"
        )
    quantizers = quantizers_for(
        opened.stats,
        raw.shape[1],
        int(hparams.get("bits", 8)),
        lambda c: raw[:, c],
        data.get("low_percentile", 0.1),
        data.get("high_percentile", 99.9),
    )
    network = ExportedVAE(vae, quantizers, local=has_local_summary(vae, tile)).eval()
    traced = _trace(network, raw)
    with torch.no_grad():
        recon, code, *rest = (t.numpy() for t in traced(torch.from_numpy(raw)))
        local = rest[0] if rest else None  # a hierarchical model's third output
        bpd = tile_bits_per_dim(vae, network.to_input(torch.from_numpy(raw)))
    info = ExportInfo(
        name=name or f"cellvae {hparams.get('arch')} VAE {len(tile)}D",
        ckpt=str(ckpt),
        image=source,
        axes="".join(space[-len(tile) :]),
        tile=tuple(tile),
        voxel_size={a: opened.voxel_size.get(a, 1.0) for a in space[-len(tile) :]},
        hparams=hparams,
        data=data,
        authors=list(authors or ["cellvae"]),
        quantizers=quantizers,
        embedding_dim=int(code.shape[1]),
        local_dim=0 if local is None else int(local.shape[1]),
        tile_bits_per_dim=bpd,
        logged=logged_metrics(Path(ckpt)),
    )
    with tempfile.TemporaryDirectory(prefix="cellvae-export-") as tmp:
        folder = Path(tmp)
        traced.save(str(folder / "weights.pt"))
        write_cover(folder / "cover.png", raw, recon, quantizers[0])
        arrays = {"raw": raw, "reconstruction": recon, "embedding": code}
        arrays |= {} if local is None else {"local_summary": local}
        descr = _describe(folder, info, opened, arrays)
        with atomic_output(output, overwrite) as partial:
            package = folder / "package.zip"  # the writer wants a .zip name
            save_bioimageio_package(descr, output_path=package)
            shutil.move(package, partial)
    return Exported(Path(output), raw, recon, code, bpd, local)


def test_package(path: str | os.PathLike):
    """``bioimageio.core.test_model`` on a package: its validation summary (``.status``)."""
    _require_bioimageio()
    from bioimageio.core import test_model

    return test_model(str(path))
