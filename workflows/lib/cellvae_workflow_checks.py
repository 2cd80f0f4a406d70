"""Checks of the workflow config that fail the dry run, not a job, in one line each.

Plain Python without cellvae or torch: Snakemake may run on a login node (or the host of an
Apptainer run) where only snakemake is installed. The fit options a preset override may name
are read from the sources of ``VAEModule`` / ``CellDataModule`` (this repository) and of
Lightning's ``Trainer`` (when Lightning is installed where Snakemake runs).
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: override sections and the (file, class) whose ``__init__`` lists their keys
SECTIONS = {
    "model": ("cellvae/training/module.py", "VAEModule"),
    "data": ("cellvae/data/datamodule.py", "CellDataModule"),
}
#: top-level fit options that take no sub-key
TOP_LEVEL = ("seed_everything", "ckpt_path", "optimizer", "lr_scheduler")


class ConfigProblem(ValueError):
    """One broken key of the workflow config, said in one line."""


def _init_args(path: Path, cls: str) -> list[str] | None:
    """Argument names of ``cls.__init__`` in the Python file ``path`` (None if unreadable)."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args.args + item.args.kwonlyargs
                    return [a.arg for a in args if a.arg != "self"]
    return None


def fit_option_names(repo: Path) -> dict[str, list[str] | None]:
    """``section -> option names`` for ``model``, ``data`` and ``trainer`` (None: unknown)."""
    names = {s: _init_args(repo / f, c) for s, (f, c) in SECTIONS.items()}
    spec = importlib.util.find_spec("lightning")
    trainer = None
    if spec is not None and spec.submodule_search_locations:
        base = Path(next(iter(spec.submodule_search_locations)))
        trainer = _init_args(base / "pytorch/trainer/trainer.py", "Trainer")
    names["trainer"] = trainer
    return names


def check_overrides(
    overrides: Mapping[str, Any], where: str, names: Mapping[str, list[str] | None]
) -> None:
    """Refuse an override key that ``cellvae fit`` would not know, suggesting the closest."""
    for key in overrides:
        section, _, rest = str(key).partition(".")
        if section in TOP_LEVEL and not rest:
            continue
        if section not in names:
            allowed = ", ".join([*names, *TOP_LEVEL])
            raise ConfigProblem(f"{where}.{key}: unknown section {section!r}; one of {allowed}")
        known = names[section]
        option = rest.split(".")[0]
        if known is None or option in known:
            continue
        close = difflib.get_close_matches(option, known, n=1)
        hint = f"; did you mean {section}.{close[0]}?" if close else ""
        raise ConfigProblem(f"{where}.{key}: {section} has no option {option!r}{hint}")


def canonical_overrides(overrides: Mapping[str, Any]) -> str:
    """``--KEY=VALUE`` options in sorted key order, values as canonical JSON.

    The same overrides in any order (or nested dicts with keys in any order) give the same
    string, so Snakemake's params check does not retrain a model after a reordering. A key
    sorts before its own sub-keys (``trainer.logger`` before ``trainer.logger.save_dir``).
    """

    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True)

    return " ".join(f"'--{k}={value(v)}'" for k, v in sorted(overrides.items()))


def schema_problem(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """The one most relevant schema violation as ``config: a.b.c: message``, or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return None
    while error.context:  # oneOf/anyOf: the most relevant branch
        error = jsonschema.exceptions.best_match(error.context)
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        message = message.split(" were unexpected")[0].split(" was unexpected")[0]
        message = f"unknown key(s) {message.split('(')[-1].rstrip(')')}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
    elif len(message) > 200:
        message = message[:200] + "..."
    return f"config: {where}: {message}"


def check_preset_names(images: Mapping[str, Any], presets: Iterable[str]) -> None:
    """Every preset an image names exists."""
    known = list(presets)
    for image, spec in images.items():
        for preset in spec.get("presets", []):
            if preset not in known:
                raise ConfigProblem(
                    f"config: images.{image}.presets: no preset {preset!r}; "
                    f"defined: {', '.join(known)}"
                )


def check_shipped_presets(presets: Mapping[str, Any]) -> None:
    """Every ``preset: NAME`` names a preset shipped with the installed cellvae."""
    from cellvae.cli.shipped import preset_path
    from cellvae.errors import CellvaeError

    for name, spec in presets.items():
        if "preset" in spec:
            try:
                preset_path(spec["preset"])
            except CellvaeError as error:
                raise ConfigProblem(f"config: presets.{name}.preset: {error}") from None


def check_fit_config(config: Mapping[str, Any], repo: Path) -> None:
    """The presets each image names exist, and every override is a ``cellvae fit`` option."""
    check_preset_names(config["images"], config["presets"])
    check_shipped_presets(config["presets"])
    names = fit_option_names(repo)
    for name, preset in config["presets"].items():
        check_overrides(preset.get("overrides", {}), f"config: presets.{name}.overrides", names)
