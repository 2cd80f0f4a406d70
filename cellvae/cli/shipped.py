"""The files cellvae ships beside its code: the fit presets and the Snakemake workflow.

In the repository they are the top-level folders ``configs/`` and ``workflows/``; the wheel
carries the same files as ``cellvae/presets/`` and ``cellvae/workflow_files/`` (pyproject's
``package-dir`` maps them, so nothing is duplicated). An editable install imports cellvae
from the checkout, where those package folders do not exist, so the checkout's top-level
folders are used there.
"""

from __future__ import annotations

from pathlib import Path

from cellvae.errors import ConfigError

#: (folder inside the installed package, folder of the repository checkout)
PRESETS = ("presets", "configs")
WORKFLOW = ("workflow_files", "workflows")


def shipped_folder(kind: tuple[str, str]) -> Path:
    """The folder of :data:`PRESETS` or :data:`WORKFLOW` in this installation."""
    import cellvae

    package = Path(cellvae.__file__).resolve().parent
    installed, checkout = kind
    if (package / installed).is_dir():
        return package / installed
    if (package.parent / "pyproject.toml").is_file() and (package.parent / checkout).is_dir():
        return package.parent / checkout
    raise ConfigError(
        f"cellvae's {checkout}/ files are missing from this installation ({package}); "
        "reinstall cellvae"
    )


def preset_names() -> list[str]:
    """Every shipped preset by name: the path below the presets folder without ``.yaml``.

    Model presets (``2d_hier_dlogistic``) come first, then the layers that go on top of one
    (``layers/slurm_ddp``).
    """
    root = shipped_folder(PRESETS)
    names = [p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")]
    return sorted(names, key=lambda name: (name.count("/"), name))


def preset_path(name: str) -> Path:
    """The YAML file of the preset ``name`` (``.yaml`` optional); a one-line error if unknown."""
    stem = name.removesuffix(".yaml")
    names = preset_names()
    if stem not in names:
        raise ConfigError(
            f"--preset: {name!r} is not a shipped preset; choose one of {', '.join(names)} "
            "(or give your own file with --config)"
        )
    return shipped_folder(PRESETS) / f"{stem}.yaml"


def preset_summary(name: str) -> str:
    """The preset's one-line description: the text after ``cellvae preset:`` (or ``config
    layer:``) on its first comment line."""
    first = preset_path(name).read_text(encoding="utf-8").splitlines()[0]
    return first.lstrip("# ").split(":", 1)[-1].strip()
