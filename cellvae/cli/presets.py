"""``cellvae presets``: list, show or copy the fit presets shipped with cellvae.

A preset is a LightningCLI config (``model:``, ``data:``, ``trainer:``); ``cellvae fit --preset
NAME`` trains with it as it is, ``copy`` writes it out to edit and use with ``--config``.
"""

from __future__ import annotations

import argparse

HELP = "list the shipped fit presets, print one, or copy one to edit (cellvae fit --preset NAME)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``list`` (the default), ``show NAME``, ``copy NAME [-o PATH] [--overwrite]``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="every preset with one line on what it trains (default)")
    show = actions.add_parser("show", help="print a preset's YAML")
    show.add_argument("name", help="preset name, e.g. 2d_hier_dlogistic")
    copy = actions.add_parser("copy", help="write a preset to a file to edit")
    copy.add_argument("name", help="preset name, e.g. 2d_hier_dlogistic")
    copy.add_argument(
        "-o", "--output", help="file or existing folder to write (default: ./NAME.yaml)"
    )
    copy.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    """Do the chosen action; ``list`` when none is given."""
    from cellvae.cli.shipped import preset_names, preset_path, preset_summary

    action = args.action or "list"
    if action == "list":
        names = preset_names()
        width = max(len(n) for n in names)
        for name in names:
            print(f"{name:<{width}}  {preset_summary(name)}")
        print("\ntrain: cellvae fit --preset NAME; edit: cellvae presets copy NAME")
        return 0
    source = preset_path(args.name)
    if action == "show":
        print(source.read_text(encoding="utf-8"), end="")
        return 0
    return _copy(source, args.output, args.overwrite)


def _copy(source, output: str | None, overwrite: bool) -> int:
    """Write ``source`` to ``output`` (a file, or a folder to put ``NAME.yaml`` in)."""
    import shutil
    from pathlib import Path

    from cellvae.io.atomic import atomic_output

    target = Path(output) if output else Path(source.name)
    if target.is_dir():
        target = target / source.name
    with atomic_output(target, overwrite) as tmp:
        shutil.copyfile(source, tmp)
    print(f"wrote {target}; train with: cellvae fit --config {target}")
    return 0


def expand_presets(argv: list[str]) -> list[str]:
    """``cellvae fit`` arguments with each ``--preset NAME`` (or ``--preset=NAME``) replaced by
    ``--config FILE`` of that shipped preset, in place, so options after it override it."""
    from cellvae.cli.shipped import preset_path
    from cellvae.errors import ConfigError

    out: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg == "--preset" or arg.startswith("--preset="):
            name = arg.partition("=")[2] if "=" in arg else next(items, "")
            if not name or name.startswith("-"):
                raise ConfigError("--preset: give a preset name; `cellvae presets` lists them")
            out += ["--config", str(preset_path(name))]
        else:
            out.append(arg)
    return out
