"""The run report: one Markdown page with figures for a pipeline run folder.

A run folder is what ``make demo`` or the workflow writes: a Lightning training log
(``**/metrics.csv``, ``**/config.yaml``, checkpoints), and the outputs of ``cellvae blur``
(a JSON summary naming its blur map), ``embed`` (a cell table) and ``sample`` (a TIFF stack).
Those are found as ``cellvae view`` finds them (:mod:`cellvae.discover`): by the provenance each
verb records in its output, whatever their names, else by the usual names ``blur.json``,
``cells.parquet``, ``samples.tif``, the newest of each kind quoted and the others listed; any of
them can also be given explicitly. The report summarises whatever is
there, says what is missing (so it also works on partial runs), and warns at the top when the
model collapsed (no active latent unit), because then every other number is meaningless.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellvae.discover import Found
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
    warnings: list[str] = field(default_factory=list)


#: a latent unit is active when its posterior mean varies across inputs more than this
ACTIVE_UNIT_VARIANCE = 0.01


def report_folder(run_dir: str | os.PathLike) -> Found:
    """The results folder to report on: ``run_dir``, or the one results folder below it.

    Outputs are found as ``cellvae view`` finds them (:func:`cellvae.discover.find_results`):
    by the provenance their verb records, whatever their names, the newest of each kind
    quoted. A folder holding several results folders (``<image>/<preset>/`` of the
    workflow) is refused in one line that lists them, rather than mixing their files.
    """
    from cellvae.discover import find_results, outputs_in

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CellvaeError(f"{run_dir}: run folder does not exist")
    found = find_results(run_dir)
    if len(found) > 1:
        names = ", ".join(str(f.folder) for f in found)
        raise CellvaeError(
            f"{run_dir}: {len(found)} results folders ({names}); report one of them, "
            f"e.g. cellvae report {found[0].folder}"
        )
    return found[0] if found else outputs_in(run_dir)


def find_output(
    found: Found, key: str, given: str | os.PathLike | None = None, verb: str = ""
) -> Path | None:
    """The output of kind ``key`` for the report: ``given``, else the newest one found."""
    if given is not None:
        path = Path(given)
        if not path.exists():
            raise CellvaeError(f"{path}: no such file ({verb or key} output given to the report)")
        return path
    return found.get(key)


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
    """Four significant digits for a float (also inside lists), ``n/a`` for an undefined
    number (null in the JSON); anything else as ``str``."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def _fixed(value: float | None) -> str:
    """Three decimals, or ``n/a`` where the blur summary holds null."""
    return "n/a" if value is None else f"{value:.3f}"


def _training(run_dir: Path, figdir: Path, train_dir: Path | None = None) -> Section:
    import matplotlib.pyplot as plt
    import pandas as pd

    section = Section("Training")
    metrics_path = _latest(train_dir or run_dir, "**/metrics.csv")
    if metrics_path is None:
        section.lines.append("No training log (`metrics.csv`) found.")
        return section
    metrics = pd.read_csv(metrics_path)
    log_dir = metrics_path.parent
    section.lines.append(f"Log: `{_shown(metrics_path, run_dir)}`.")
    config = _latest(log_dir, "**/config.yaml")
    if config is not None:
        section.lines.append(f"Resolved configuration: `{_shown(config, run_dir)}`.")
    ckpt = _latest(log_dir, "**/*.ckpt")
    if ckpt is not None:
        section.lines.append(f"Checkpoint: `{_shown(ckpt, run_dir)}`.")
    rows = []
    for name in TRAINING_METRICS:
        if name in metrics and metrics[name].notna().any():
            rows.append(f"| {name} | {metrics[name].dropna().iloc[-1]:.4g} |")
    if rows:
        section.lines += ["", "| final validation metric | value |", "|---|---|", *rows]
    collapse = _collapse_warning(metrics, config)
    if collapse:
        section.warnings.append(collapse)
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


def _run_options(config: Path | None) -> dict:
    """The ``model:`` section of a run's resolved ``config.yaml`` (empty if unreadable)."""
    import yaml

    try:
        model = (yaml.safe_load(config.read_text()) or {}).get("model") if config else None
    except (OSError, yaml.YAMLError):
        model = None
    return model if isinstance(model, dict) else {}


def _collapse_warning(metrics, config: Path | None) -> str | None:
    """The training log's collapse warning, with advice for this run, or ``None``.

    Decided by the informative units the validation logged (information, not the variance
    cut; :mod:`cellvae.metrics.information`), or by the active units of older logs.
    """
    from cellvae.training.collapse import collapse_advice

    steps = int(metrics["step"].dropna().iloc[-1]) if "step" in metrics else None
    advice = collapse_advice(_run_options(config), steps)
    for name, what in (
        ("val/informative_units", "0 latent units carry information"),
        ("val/active_units", "0 active latent units"),
    ):
        if name in metrics and metrics[name].notna().any():
            if metrics[name].dropna().iloc[-1] != 0:
                return None
            return (
                f"posterior collapse: {what} at the last validation; the code carries "
                "nothing about the input, so reconstructions are one average image. "
                f"For this run: {advice}"
            )
    return None


def _shown(path: Path, run_dir: Path) -> str:
    """``path`` relative to the run folder when it lies inside it (either may be relative:
    provenance records absolute paths), else as given."""
    inside, base = path.resolve(), run_dir.resolve()
    return str(inside.relative_to(base)) if inside.is_relative_to(base) else str(path)


def _blur(run_dir: Path, figdir: Path, summary_path: Path | None) -> Section:
    section = Section("Reconstruction and blur")
    if summary_path is None:
        section.lines.append("No blur summary (`blur.json`) found.")
        return section
    try:
        summary = json.loads(summary_path.read_text())
    except ValueError:
        raise CellvaeError(f"{summary_path}: not a JSON blur summary") from None
    section.lines.append(f"Summary: `{_shown(summary_path, run_dir)}`.")
    noise_aware = "share_of_resolvable_structure_kept" in summary
    if noise_aware:
        section.lines += _blur_figures(summary)
        section.warnings += _camera_warnings(summary)
    frc = summary.get("frc", {})
    legacy = [
        f"global high-frequency power ratio (reconstruction / original above "
        f"{summary['cutoff_cycles_per_px']:g} cycles/px): "
        + (
            _fixed(summary["global_hf_ratio"])
            if noise_aware
            else f"**{_fixed(summary['global_hf_ratio'])}**"
        )
        + " (1 = as sharp as the original, lower = blurrier)",
        f"median window ratio: {_fixed(summary['median_window_hf_ratio'])}",
        f"FRC 1/7 resolution: {_number(frc.get('resolution_1_7_px'))} px; half-bit: "
        f"{_number(frc.get('resolution_half_bit_px'))} px",
    ]
    if noise_aware:
        section.lines += [
            "- for comparison, against the *noisy* original (not noise-aware: removed noise "
            "counts as lost detail): " + "; ".join(legacy)
        ]
    else:
        section.lines += [f"- {line}" for line in legacy]
    section.lines += _worst_table(summary, noise_aware)
    section.lines += ["", _blur_panels(summary, figdir)]
    if noise_aware and summary.get("resolution"):
        section.lines += ["", _resolution_plot(summary, figdir)]
    return section


def _blur_figures(summary: dict) -> list[str]:
    """The noise-aware figures of a ``cellvae blur`` summary, one bullet each."""
    lines = [
        "- share of the original's resolvable structure kept: "
        f"**{_fixed(summary['share_of_resolvable_structure_kept'])}** (1 = all kept, 0 = all "
        f"lost; {summary['windows_with_signal']} of {summary['windows']} windows have signal "
        "above the original's noise, the others are shown as no signal)",
        f"- {summary['resolution_sentence']} (the original resolves a detail where two "
        "acquisitions would correlate above 1/7; the reconstruction keeps it where it keeps at "
        "least half of the original's signal power)",
    ]
    camera = summary.get("camera") or {}
    if camera:
        parts = [
            f"{name.replace('_', ' ')} {_number(camera.get(name))} "
            f"({(camera.get('sources') or {}).get(name, 'unknown')})"
            for name in ("gain", "offset", "read_noise")
        ]
        lines.append(
            "- camera model: "
            + ", ".join(parts)
            + f"; noise variance = {_number(camera.get('noise_variance_slope'))} x intensity "
            f"+ {_number(camera.get('noise_variance_intercept'))}"
        )
    truth = summary.get("truth")
    if truth:
        lines.append(
            "- against the noise-free truth (`" + str(truth.get("path")) + "`): share kept "
            f"**{_fixed(truth.get('share_of_resolvable_structure_kept'))}**, reconstruction "
            f"keeps {truth.get('reconstruction_keeps_text', 'n/a')}; the noise-aware map and "
            f"the truth-based map agree with Spearman {_fixed(truth.get('map_spearman'))} over "
            f"{truth.get('map_spearman_windows', 0)} windows"
        )
    return lines


def _camera_warnings(summary: dict) -> list[str]:
    fit = (summary.get("camera") or {}).get("fit") or {}
    return [f"blur: {fit['warning']}"] if fit.get("warning") else []


def _worst_table(summary: dict, noise_aware: bool) -> list[str]:
    worst = summary.get("worst_regions", [])
    if not worst:
        return []
    if not noise_aware:
        keys = list(worst[0])
        lines = ["", "Regions that lost the most detail:", ""]
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        return lines + ["| " + " | ".join(_number(w[k]) for k in keys) + " |" for w in worst]
    columns = [
        ("centre (px)", "centre"),
        ("share of the original's structure kept", "share_kept"),
        ("signal / noise deviation", "signal_to_noise"),
    ]
    if "share_kept_against_truth" in worst[0]:
        columns.append(("share kept against the truth", "share_kept_against_truth"))
    lines = [
        "",
        "Regions that kept the least of the original's structure (ranked by that share, lowest "
        "first, among windows whose signal is at least "
        f"{_number(summary.get('worst_region_threshold_noise_deviations'))} noise deviations):",
        "",
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    return lines + [
        "| " + " | ".join(_number(w.get(key)) for _, key in columns) + " |" for w in worst
    ]


def _blur_panels(summary: dict, figdir: Path) -> str:
    """Original, reconstruction and the blur map(s) side by side; no-signal windows grey."""
    import matplotlib.pyplot as plt

    noise_aware = "share_of_resolvable_structure_kept" in summary
    map_title = "share of structure kept" if noise_aware else "blur map (HF ratio)"
    panels = [
        ("original", summary["original"]),
        ("reconstruction", summary["recon"]),
        (map_title + (" (noise-aware)" if noise_aware else ""), summary["blur_map"]),
    ]
    if (summary.get("truth") or {}).get("blur_map"):
        panels.append((map_title + " (against truth)", summary["truth"]["blur_map"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.6), layout="constrained")
    for ax, (title, path) in zip(axes, panels, strict=True):
        try:
            image = _preview(path)
        except CellvaeError:
            ax.set_title(f"{title}: not found", fontsize=9)
            ax.axis("off")
            continue
        is_map = title.startswith(map_title)
        cmap = plt.get_cmap("magma" if is_map else "gray").copy()
        cmap.set_bad((0.82, 0.82, 0.82))  # no signal above noise
        shown = ax.imshow(image, cmap=cmap)
        if is_map:
            shown.set_clim(0, 1)
            fig.colorbar(shown, ax=ax, fraction=0.046, label="share kept; grey: no signal")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return f"![reconstruction and blur]({figdir.name}/{_save(fig, figdir / 'blur.png')})"


def _resolution_plot(summary: dict, figdir: Path) -> str:
    """Per ring: the original's expected FRC and the reconstruction's kept power."""
    import matplotlib.pyplot as plt

    res = summary["resolution"]
    freqs = np.asarray(res["frequencies_cycles_per_px"], float)

    def curve(key):
        values = res.get(key)
        return None if values is None else np.array([np.nan if v is None else v for v in values])

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(
        freqs, curve("original_expected_frc"), label="original: expected FRC of two acquisitions"
    )
    ax.plot(
        freqs,
        curve("reconstruction_power_over_original_signal"),
        label="reconstruction / original signal power",
    )
    truth = curve("reconstruction_power_over_truth")
    if truth is not None:
        ax.plot(freqs, truth, "--", label="reconstruction / truth power")
    ax.axhline(1 / 7, color="0.5", lw=0.8, ls=":")
    ax.axhline(0.5, color="0.5", lw=0.8, ls="-.")
    for key, style in (("original_resolves_px", ":"), ("reconstruction_keeps_px", "-.")):
        if res.get(key):
            ax.axvline(1 / res[key], color="k", lw=0.8, ls=style)
    ax.set_xlabel("spatial frequency (cycles/px)")
    ax.set_ylim(-0.05, 1.3)
    ax.set_title(summary.get("resolution_sentence", ""), fontsize=9)
    ax.legend(fontsize=7)
    return f"![resolution]({figdir.name}/{_save(fig, figdir / 'blur_resolution.png')})"


def _cells(run_dir: Path, figdir: Path, table_path: Path | None) -> Section:
    import matplotlib.pyplot as plt
    import pandas as pd

    section = Section("Cell embeddings")
    if table_path is None:
        section.lines.append("No cell table (`cells.parquet`) found.")
        return section
    cells = pd.read_parquet(table_path)
    latent = [c for c in cells if c.startswith("z_mean_")]
    local = [c for c in cells if c.startswith("local_")]
    summary = f" plus {len(local)} numbers summarising the local latents" if local else ""
    section.lines.append(
        f"{len(cells)} cells, {len(latent)} latent dimensions each{summary} "
        f"(`{_shown(table_path, run_dir)}`; open it with pandas or as the features of a napari "
        "labels layer)."
    )
    tuned = _finetuned_line(table_path, cells, run_dir)
    if tuned:
        section.lines.append(tuned)
    if latent and len(cells) > 1:
        active = int((cells[latent].var() > ACTIVE_UNIT_VARIANCE).sum())
        section.lines.append(
            f"Active latent units across cells (variance of the mean > "
            f"{ACTIVE_UNIT_VARIANCE:g}): {active} of {len(latent)}."
        )
        informative = _informative_cells(cells, latent)
        if informative is not None:
            section.lines.append(informative[1])
        if (active if informative is None else informative[0]) == 0:
            from cellvae.training.collapse import collapse_advice

            advice = collapse_advice(
                _run_options(_latest(run_dir, "**/config.yaml")), None, embedding=True
            )
            section.warnings.append(
                f"posterior collapse: no latent unit varies across the {len(cells)} cells; "
                f"the embeddings do not tell the cells apart. For this run: {advice}"
            )
    if {"pca_0", "pca_1"} <= set(cells):
        fig, ax = plt.subplots(figsize=(4.5, 4))
        size = next((c for c in ("size_physical", "size_voxels") if c in cells), None)
        colour = cells[size] if size else None
        shown = ax.scatter(cells["pca_0"], cells["pca_1"], c=colour, s=12, cmap="viridis")
        if size:
            fig.colorbar(shown, ax=ax, label=size)
        ax.set_xlabel("PC 1 of the cells' description" if local else "PC 1 of the latent means")
        ax.set_ylabel("PC 2")
        section.lines += ["", f"![embedding]({figdir.name}/{_save(fig, figdir / 'cells.png')})"]
    return section


def _finetuned_line(table_path: Path, cells, run_dir: Path) -> str | None:
    """Which model made the codes of a table embedded with ``embed --finetune``, else None."""
    from cellvae.io.provenance import read_provenance

    steps = int(cells["finetune_steps"].max()) if "finetune_steps" in cells and len(cells) else 0
    if steps <= 0:
        return None
    inputs = (read_provenance(table_path) or {}).get("inputs") or {}
    model, base = inputs.get("ckpt"), inputs.get("finetuned_from")
    if not model or not base:
        return (
            f"The model was fine-tuned {steps} updates on these cells before embedding, and "
            "not saved (a table of an older cellvae): the training checkpoint decodes its "
            "codes only approximately; embed again to save the fine-tuned model."
        )
    return (
        f"Codes of the model fine-tuned {steps} updates on these cells "
        f"(`{_shown(Path(model), run_dir)}`, from `{_shown(Path(base), run_dir)}`); "
        "decode them with it."
    )


def _informative_cells(cells, latent: list[str]) -> tuple[int, str] | None:
    """Informative units of a cell table (means and log-variances), and the line saying so."""
    import torch

    from cellvae.metrics.information import INFORMATIVE_NATS, mutual_information, unit_information

    logvar = [c.replace("z_mean_", "z_logvar_") for c in latent]
    if not set(logvar) <= set(cells.columns):
        return None
    mean = torch.from_numpy(cells[latent].to_numpy(np.float64))
    var = torch.from_numpy(cells[logvar].to_numpy(np.float64))
    info = unit_information(mean, var)
    count = int((info > INFORMATIVE_NATS).sum())
    sample = np.random.default_rng(0).permutation(len(cells))[:2000]
    mi = mutual_information(mean[sample], var[sample], 2, torch.Generator().manual_seed(0))
    return count, (
        f"Informative latent units (each carries > {INFORMATIVE_NATS:g} nats about the cell): "
        f"{count} of {len(latent)}; together {float(info.sum()):.2f} nats; mutual information "
        f"of the embedding with the cell ≈ {mi:.2f} nats (at most ln {len(sample)} = "
        f"{np.log(len(sample)):.2f} from {len(sample)} cells)."
    )


def _samples(run_dir: Path, figdir: Path, path: Path | None) -> Section:
    import matplotlib.pyplot as plt
    import tifffile

    section = Section("Samples from the prior")
    if path is None:
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


def write_run_report(
    run_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    blur: str | os.PathLike | None = None,
    cells: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    train: str | os.PathLike | None = None,
) -> Path:
    """Write ``report.md`` (default ``RUN_DIR/report.md``) with figures beside it.

    ``run_dir`` is a results folder or a folder holding exactly one (:func:`report_folder`);
    the report goes into that results folder. ``blur`` (a ``cellvae blur`` JSON summary),
    ``cells`` (an ``embed`` table), ``samples`` (a ``sample`` TIFF) and ``train`` (a folder
    holding the training log) override what is found there (:func:`find_output`). Raises
    :class:`CellvaeError` when ``run_dir`` does not exist or holds several results folders,
    an output cannot be written, or there is nothing to report.
    """
    import matplotlib

    from cellvae.io.atomic import atomic_output, claim_outputs

    matplotlib.use("Agg")
    found = report_folder(run_dir)
    run_dir = found.folder
    output = Path(output) if output is not None else run_dir / "report.md"
    figdir = output.with_name(output.stem + "_figures")
    if train is not None and not Path(train).is_dir():
        raise CellvaeError(f"{train}: training folder does not exist")
    chosen = (
        find_output(found, "blur", blur, "blur"),
        find_output(found, "cells", cells, "embed"),
        find_output(found, "samples", samples, "sample"),
    )
    with claim_outputs([output, figdir], overwrite=True):
        figdir.mkdir(parents=True, exist_ok=True)
        sections = [
            _training(run_dir, figdir, Path(train) if train is not None else None),
            _blur(run_dir, figdir, chosen[0]),
            _cells(run_dir, figdir, chosen[1]),
            _samples(run_dir, figdir, chosen[2]),
        ]
        if all(len(s.lines) == 1 and s.lines[0].startswith("No ") for s in sections):
            figdir.rmdir()
            raise CellvaeError(
                f"{run_dir}: nothing to report (no training log, blur, cells or samples)"
            )
        lines = [f"# cellvae run report: `{run_dir}`", ""]
        choices = found.listing(choices_only=True)
        if choices:
            lines += ["Found several outputs of a kind; the newest is quoted:", ""]
            lines += [f"- {line}" for line in choices] + [""]
        for warning in (w for section in sections for w in section.warnings):
            lines += [f"> **Warning: {warning}.**", ""]
        for section in sections:
            lines += [f"## {section.title}", "", *section.lines, ""]
        with atomic_output(output, overwrite=True) as tmp:
            tmp.write_text("\n".join(lines))
    return output
