"""Refuse bad input paths in well under a second, before a verb imports torch and Lightning.

Importing the model stack takes seconds; a missing file, an unreadable checkpoint or a bad
``--axes`` should not. Each check here raises the same one-line error the verb itself would
raise later, using only the standard library and ``cellvae.io`` (zarr, tifffile). A value
with ``://`` is a remote address (``https://``, ``s3://``): it is left to the verb.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from cellvae.errors import CellvaeError, ConfigError

#: verb -> (argument, kind) in the order the verb itself reads them; kinds: ``ckpt`` (a
#: checkpoint file), ``image`` (an OME-Zarr image), ``labels`` (a label TIFF or OME-Zarr,
#: with the verb's ``--axes``), ``path`` (anything that must exist)
INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "reconstruct": (("ckpt", "ckpt"), ("input", "image")),
    "embed": (("input", "image"), ("labels", "labels"), ("ckpt", "ckpt")),
    "blur": (("original", "path"), ("recon", "path")),
    "sample": (("ckpt", "ckpt"), ("embeddings", "path"), ("image", "image")),
}
#: checkpoint names resolved at run time: Lightning's (``--ckpt_path last``) and cellvae's
#: ``auto`` (the run folder's newest valid checkpoint, or a fresh start)
LIGHTNING_CKPT_NAMES = ("auto", "last", "best", "hpc", "registry")


def is_remote(value: str) -> bool:
    """Whether ``value`` is a URL (``https://...``, ``s3://...``) rather than a local path."""
    return "://" in str(value)


def check_exists(value: str, missing: str = "no such file or directory") -> Path:
    """``value`` as a path that exists and can be read; else ``VALUE: <missing>``."""
    path = Path(value)
    if not path.exists():
        raise CellvaeError(f"{value}: {missing}")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise CellvaeError(f"{value}: cannot read (permission denied)")
    return path


def check_checkpoint_file(value: str) -> None:
    """A checkpoint is a readable file in PyTorch's zip format (all that ``torch.save``
    writes since PyTorch 1.6); what it holds is checked when it is loaded."""
    path = check_exists(value, "checkpoint not found")
    if not path.is_file():
        raise CellvaeError(f"{value}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise CellvaeError(
            f"{value}: not a readable checkpoint (not a PyTorch file, or a damaged one)"
        )


def check_inputs(verb: str, args: argparse.Namespace) -> None:
    """Check the input files of ``cellvae VERB`` (see :data:`INPUTS`) without torch: first
    that every one exists (no import at all), then that checkpoints, images and labels open."""
    given = [
        (getattr(args, name), kind)
        for name, kind in INPUTS.get(verb, ())
        if getattr(args, name, None) is not None and not is_remote(getattr(args, name))
    ]
    if verb == "embed" and str(getattr(args, "output", "")).lower().endswith(".h5ad"):
        from cellvae.io.tables import check_table_output  # pandas: only when it is needed

        check_table_output(args.output)  # a missing extra is named before any input is read
    for value, kind in given:
        check_exists(
            value, "checkpoint not found" if kind == "ckpt" else "no such file or directory"
        )
    for value in getattr(args, "interpolate_codes", None) or ():
        check_exists(value)
    for value, kind in given:
        if kind == "ckpt":
            check_checkpoint_file(value)
        elif kind == "image":
            from cellvae.io.omezarr import open_image

            open_image(value)
        elif kind == "labels":
            from cellvae.io.omezarr import open_labels

            open_labels(value, axes=getattr(args, "axes", None))


def _option_values(argv: Sequence[str], *names: str) -> list[str]:
    """Every value given to the options ``names`` as ``--name VALUE`` or ``--name=VALUE``."""
    values = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg[len(name) + 1 :])
    return values


def _data_paths(argv: Sequence[str], configs: list[str]) -> list[str]:
    """The image paths ``fit`` will read when they can be told from the command line alone:
    the last ``--data.paths``, else those of the last config file that sets them."""
    import yaml

    given = _option_values(argv, "--data.paths")
    try:
        if given:
            paths = yaml.safe_load(given[-1])
        else:
            paths = None
            for config in configs:
                data = (yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}).get("data")
                if isinstance(data, dict) and "paths" in data:
                    paths = data["paths"]
    except (yaml.YAMLError, OSError, AttributeError):
        return []  # LightningCLI will say what is wrong with it
    if isinstance(paths, str):
        paths = [paths]
    return [str(p) for p in paths] if isinstance(paths, list) else []


def check_fit_arguments(argv: Sequence[str]) -> None:
    """Check what ``cellvae fit|validate|test`` names on its command line: config files, the
    checkpoint to resume from and the images to train on."""
    configs = _option_values(argv, "--config", "-c")
    for config in configs:
        inline = any(c in config for c in "{:\n")  # jsonargparse also takes YAML text
        if not inline and not Path(config).is_file():
            raise ConfigError(f"--config: {config}: no such file")
    for ckpt in _option_values(argv, "--ckpt_path"):
        if ckpt not in LIGHTNING_CKPT_NAMES and not is_remote(ckpt):
            check_checkpoint_file(ckpt)
    if {"-h", "--help", "--print_config"} & {a.partition("=")[0] for a in argv}:
        return  # nothing is read then
    for path in _data_paths(argv, [c for c in configs if Path(c).is_file()]):
        if not is_remote(path) and not os.path.exists(path):
            raise ConfigError(
                f"paths: {path} does not exist; make it with 'cellvae ingest IMAGE -o {path}' "
                f"or, for a bundled sample, 'cellvae ingest --sample NAME -o {path}'"
            )
