"""Shared plumbing of the experiments: writing tables and figures, the registry, ``run_all``.

Every experiment module defines ``run(outdir, fast=False, seed=0) -> dict`` and ends with
:func:`finish`, so each returns the same keys: ``name``, ``table`` and ``figure`` (paths),
``numbers`` (the headline measurements), ``expectation`` (the claim, in words) and ``holds``
(whether the measured numbers point the expected way). ``run_all`` runs them in turn and
writes ``report.md`` and ``summary.json``.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from cellvae.errors import check_choice
from cellvae.io.atomic import atomic_output

#: experiment name -> module under ``cellvae.experiments``, in the order of the report.
EXPERIMENTS: dict[str, str] = {
    "rate-distortion": "rate_distortion",
    "collapse": "collapse",
    "variance-to-zero": "variance_to_zero",
    "prototype": "prototype",
    "latent-size": "latent_size",
    "pca": "pca",
    "blur": "blur",
    "lorenz": "lorenz",
    "amortization-gap": "amortization_gap",
}


def experiment_runner(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run`` function of experiment ``name``; raises ``ConfigError`` for unknown names."""
    check_choice("experiment", name, [*EXPERIMENTS])
    return importlib.import_module(f"cellvae.experiments.{EXPERIMENTS[name]}").run


def write_table(outdir: Path, name: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` (one dict per row) as ``<outdir>/<name>.csv`` and return the path."""
    path = Path(outdir) / f"{name}.csv"
    with atomic_output(path, overwrite=True) as tmp:
        pd.DataFrame(list(rows)).to_csv(tmp, index=False, float_format="%.6g")
    return path


def save_figure(fig: plt.Figure, outdir: Path, name: str) -> Path:
    """Save ``fig`` as ``<outdir>/<name>.png`` (100 dpi), close it and return the path."""
    path = Path(outdir) / f"{name}.png"
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def finish(
    outdir: Path,
    name: str,
    rows: Sequence[dict[str, Any]],
    fig: plt.Figure,
    numbers: dict[str, Any],
    expectation: str,
    holds: bool,
) -> dict[str, Any]:
    """Write the table and figure of experiment ``name`` and return its result dict."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    table = write_table(outdir, name, rows)
    figure = save_figure(fig, outdir, name)
    return {
        "name": name,
        "table": str(table),
        "figure": str(figure),
        "numbers": {k: _plain(v) for k, v in numbers.items()},
        "expectation": expectation,
        "holds": bool(holds),
    }


def _plain(value: Any) -> Any:
    """A JSON-friendly version of ``value`` (numpy/torch scalars become floats)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _markdown_table(csv_path: Path) -> str:
    """The CSV at ``csv_path`` as a GitHub markdown table."""
    frame = pd.read_csv(csv_path)
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def run_all(
    outdir: Path,
    names: Sequence[str] | None = None,
    fast: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the experiments ``names`` (default: all) and write ``report.md`` and ``summary.json``.

    Returns ``{name: result}`` where each result also carries ``seconds`` (wall time).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in names or list(EXPERIMENTS):
        runner = experiment_runner(name)
        start = time.perf_counter()
        result = runner(outdir, fast=fast, seed=seed)
        result["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = result
        log(f"{name}: {result['seconds']:.1f} s -> {result['table']}, {result['figure']}")
    _write_report(outdir, results, fast=fast, seed=seed)
    return results


def _write_report(outdir: Path, results: dict[str, Any], fast: bool, seed: int) -> None:
    """Write ``summary.json`` and ``report.md`` (every table and figure) into ``outdir``."""
    with atomic_output(outdir / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    parts = [
        "# cellvae experiments",
        "",
        f"Settings: fast={fast}, seed={seed}. Tables are CSV files beside this report.",
        "",
    ]
    for name, result in results.items():
        verdict = "as expected" if result["holds"] else "NOT as expected"
        numbers = ", ".join(f"{k} = {_fmt(v)}" for k, v in result["numbers"].items())
        parts += [
            f"## {name} ({result['seconds']:.1f} s, {verdict})",
            "",
            f"Expectation: {result['expectation']}",
            "",
            f"Measured: {numbers}",
            "",
            _markdown_table(Path(result["table"])),
            "",
            f"![{name}]({Path(result['figure']).name})",
            "",
        ]
    with atomic_output(outdir / "report.md", overwrite=True) as tmp:
        tmp.write_text("\n".join(parts))


def _fmt(value: Any) -> str:
    """Four significant digits for floats, ``str`` for the rest."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
