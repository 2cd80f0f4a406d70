"""The run report: one Markdown page with figures for a pipeline run folder.

A run folder is what ``make demo`` or the workflow writes: a Lightning training log
(``**/metrics.csv``, ``**/config.yaml``, checkpoints), and any of ``recon*.ome.zarr``,
``blur.json`` (with the blur map it names), ``cells.parquet`` and ``samples.tif``. The report
summarises whatever is there and says what is missing, so it also works on partial runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellvae.errors import CellvaeError

#: validation metrics shown in the training table, in this order, when logged.
TRAINING_METRICS = (
    "val/bits_per_dim",
    "val/iwae_bits_per_dim",
    "val/elbo",
    "val/distortion",
    "val/rate",
    "val/active_units",
)


@dataclass
class Section:
    """A titled block of Markdown lines and the figures it refers to."""

    title: str
    lines: list[str] = field(default_factory=list)


def _latest(run_dir: Path, pattern: str) -> Path | None:
    found = sorted(run_dir.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _preview(path: str | os.PathLike, max_side: int = 1024) -> np.ndarray:
    """The middle (Y, X) plane of an OME-Zarr image at the finest level that fits ``max_side``.

    Only that plane is read, so a preview of a huge volume stays small.
    """
    from cellvae.io.omezarr import open_image

    image = open_image(path)
    for level in range(len(image.levels)):
        image = open_image(path, level=level)
        if max(image.shape[-2:]) <= max_side:
            break
    middle = tuple(s // 2 for s in image.shape[:-2])
    return np.asarray(image.array[middle])


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def _number(value: object) -> str:
    """Four significant digits for a float (also inside lists); anything else as ``str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def _training(run_dir: Path, figdir: Path) -> Section:
    import matplotlib.pyplot as plt
    import pandas as pd

    section = Section("Training")
    metrics_path = _latest(run_dir, "**/metrics.csv")
    if metrics_path is None:
        section.lines.append("No training log (`metrics.csv`) found.")
        return section
    metrics = pd.read_csv(metrics_path)
    section.lines.append(f"Log: `{metrics_path.relative_to(run_dir)}`.")
    config = _latest(run_dir, "**/config.yaml")
    if config is not None:
        section.lines.append(f"Resolved configuration: `{config.relative_to(run_dir)}`.")
    ckpt = _latest(run_dir, "**/*.ckpt")
    if ckpt is not None:
        section.lines.append(f"Checkpoint: `{ckpt.relative_to(run_dir)}`.")
    rows = []
    for name in TRAINING_METRICS:
        if name in metrics and metrics[name].notna().any():
            rows.append(f"| {name} | {metrics[name].dropna().iloc[-1]:.4g} |")
    if rows:
        section.lines += ["", "| final validation metric | value |", "|---|---|", *rows]
    curves = [c for c in ("train/bits_per_dim", "val/bits_per_dim") if c in metrics]
    if curves and "step" in metrics:
        fig, ax = plt.subplots(figsize=(5, 3))
        for name in curves:
            valid = metrics[["step", name]].dropna()
            ax.plot(valid["step"], valid[name], label=name, marker="." if "val" in name else None)
        ax.set_xlabel("step")
        ax.set_ylabel("bits / dim")
        ax.legend()
        section.lines += [
            "",
            f"![training curves]({figdir.name}/{_save(fig, figdir / 'training.png')})",
        ]
    return section


def _blur(run_dir: Path, figdir: Path) -> Section:
    import matplotlib.pyplot as plt

    section = Section("Reconstruction and blur")
    summary_path = run_dir / "blur.json"
    if not summary_path.exists():
        section.lines.append("No blur summary (`blur.json`) found.")
        return section
    summary = json.loads(summary_path.read_text())
    frc = summary.get("frc", {})
    section.lines += [
        f"- global high-frequency power ratio (reconstruction / original above "
        f"{summary['cutoff_cycles_per_px']:g} cycles/px): **{summary['global_hf_ratio']:.3f}** "
        "(1 = as sharp as the original, lower = blurrier)",
        f"- median window ratio: {summary['median_window_hf_ratio']:.3f}",
        f"- FRC 1/7 resolution: {_number(frc.get('resolution_1_7_px'))} px; half-bit: "
        f"{_number(frc.get('resolution_half_bit_px'))} px",
    ]
    worst = summary.get("worst_regions", [])
    if worst:
        keys = list(worst[0])
        section.lines += ["", "Regions that lost the most detail:", ""]
        section.lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        section.lines += ["| " + " | ".join(_number(w[k]) for k in keys) + " |" for w in worst]
    panels = [("original", summary["original"]), ("reconstruction", summary["recon"])]
    panels.append(("blur map (HF ratio)", summary["blur_map"]))
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, path) in zip(axes, panels, strict=True):
        try:
            image = _preview(path)
        except CellvaeError:
            ax.set_title(f"{title}: not found")
            ax.axis("off")
            continue
        shown = ax.imshow(image, cmap="magma" if "blur" in title else "gray")
        if "blur" in title:
            shown.set_clim(0, 1)
            fig.colorbar(shown, ax=ax, fraction=0.046)
        ax.set_title(title)
        ax.axis("off")
    section.lines += [
        "",
        f"![reconstruction and blur]({figdir.name}/{_save(fig, figdir / 'blur.png')})",
    ]
    return section


def _cells(run_dir: Path, figdir: Path) -> Section:
    import matplotlib.pyplot as plt
    import pandas as pd

    section = Section("Cell embeddings")
    table_path = run_dir / "cells.parquet"
    if not table_path.exists():
        section.lines.append("No cell table (`cells.parquet`) found.")
        return section
    cells = pd.read_parquet(table_path)
    latent = [c for c in cells if c.startswith("z_mean_")]
    section.lines.append(
        f"{len(cells)} cells, {len(latent)} latent dimensions each (`cells.parquet`; open it "
        "with pandas or as the features of a napari labels layer)."
    )
    if {"pca_0", "pca_1"} <= set(cells):
        fig, ax = plt.subplots(figsize=(4.5, 4))
        size = next((c for c in ("size_physical", "size_voxels") if c in cells), None)
        colour = cells[size] if size else None
        shown = ax.scatter(cells["pca_0"], cells["pca_1"], c=colour, s=12, cmap="viridis")
        if size:
            fig.colorbar(shown, ax=ax, label=size)
        ax.set_xlabel("PC 1 of the latent means")
        ax.set_ylabel("PC 2")
        section.lines += ["", f"![embedding]({figdir.name}/{_save(fig, figdir / 'cells.png')})"]
    return section


def _samples(run_dir: Path, figdir: Path) -> Section:
    import matplotlib.pyplot as plt
    import tifffile

    section = Section("Samples from the prior")
    path = run_dir / "samples.tif"
    if not path.exists():
        section.lines.append("No prior samples (`samples.tif`) found.")
        return section
    stack = tifffile.imread(path)
    stack = stack.reshape(-1, *stack.shape[-2:])[:16]
    cols = min(8, len(stack))
    rows = int(np.ceil(len(stack) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, stack, strict=False):
        ax.imshow(image, cmap="gray")
    section.lines.append(f"![prior samples]({figdir.name}/{_save(fig, figdir / 'samples.png')})")
    return section


def write_run_report(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write ``report.md`` (default ``RUN_DIR/report.md``) with figures beside it.

    Raises :class:`CellvaeError` when ``run_dir`` does not exist or holds nothing to report.
    """
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CellvaeError(f"{run_dir}: run folder does not exist")
    output = Path(output) if output is not None else run_dir / "report.md"
    figdir = output.with_name(output.stem + "_figures")
    figdir.mkdir(parents=True, exist_ok=True)
    sections = [build(run_dir, figdir) for build in (_training, _blur, _cells, _samples)]
    if all(len(s.lines) == 1 and s.lines[0].startswith("No ") for s in sections):
        figdir.rmdir()
        raise CellvaeError(
            f"{run_dir}: nothing to report (no training log, blur, cells or samples)"
        )
    lines = [f"# cellvae run report: `{run_dir}`", ""]
    for section in sections:
        lines += [f"## {section.title}", "", *section.lines, ""]
    tmp = output.with_name(output.name + ".partial")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, output)
    return output
