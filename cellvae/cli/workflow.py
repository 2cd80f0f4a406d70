"""``cellvae workflow init DIR``: a runnable copy of the Snakemake workflow shipped with cellvae.

``DIR/workflows/`` gets the Snakefile, rules, config, schema, report captions, profiles and HPC
templates, laid out as in the repository, so the README's commands run from ``DIR`` as they
do from a checkout. The shipped config names its presets (``preset: NAME``), which the
installed ``cellvae fit --preset`` finds, so no other file is needed.
"""

from __future__ import annotations

import argparse

HELP = "copy the Snakemake workflow (Snakefile, config, profiles) into a folder to run or edit"

#: left out of the copy: caches a run of the workflow in the source folder may have left
IGNORED = ("__pycache__", "*.pyc", ".snakemake")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``init DIR [--overwrite]``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="write DIR/workflows/ (created if missing), then run it from DIR"
    )
    init.add_argument("dir", help="project folder, e.g. my-project")
    init.add_argument("--overwrite", action="store_true", help="replace an existing DIR/workflows/")


def run(args: argparse.Namespace) -> int:
    """Copy the workflow and print how to run it."""
    import shutil
    from pathlib import Path

    from cellvae.cli.shipped import WORKFLOW, shipped_folder
    from cellvae.errors import CellvaeError
    from cellvae.io.atomic import atomic_output

    source = shipped_folder(WORKFLOW)
    project = Path(args.dir)
    try:
        project.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CellvaeError(f"{project}: cannot create the folder ({reason})") from None
    with atomic_output(project / "workflows", args.overwrite) as tmp:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*IGNORED))
    print(
        f"wrote {project / 'workflows'}; edit workflows/config/config.yaml (images, presets), "
        f"then run it:\n  cd {project}\n"
        "  snakemake -s workflows/Snakefile --profile workflows/profiles/local"
    )
    return 0
