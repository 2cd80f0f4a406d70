"""The ``cellvae`` command.

Each verb lives in its own module ``cellvae.cli.<verb>`` that defines::

    HELP: str                                   # one line for ``cellvae --help``
    def add_arguments(parser) -> None           # options of the verb
    def run(args: argparse.Namespace) -> int    # does the work, returns the exit code

Verb modules import only the standard library at module level, so ``cellvae --help`` stays
fast; the library is imported inside ``run``. ``fit``, ``validate`` and ``test`` are handed to
LightningCLI (``cellvae.cli.lightning``), which owns their options and YAML configs.

User errors (:class:`cellvae.errors.CellvaeError`) print one line and exit non-zero; usage
errors exit with code 2, as argparse does.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import warnings
from collections.abc import Sequence

from cellvae import __version__
from cellvae.errors import CellvaeError

#: verb -> module under ``cellvae.cli``; the order is the order of the pipeline.
VERBS: dict[str, str] = {
    "ingest": "ingest",
    "fit": "lightning",
    "validate": "lightning",
    "test": "lightning",
    "presets": "presets",
    "reconstruct": "reconstruct",
    "embed": "embed",
    "blur": "blur",
    "sample": "sample",
    "export": "export",
    "report": "report",
    "workflow": "workflow",
    "experiment": "experiment",
    "view": "view",
}
LIGHTNING_VERBS = ("fit", "validate", "test")
#: what Ctrl-C leaves behind, for verbs that keep finished work (others remove partial output)
INTERRUPTED = {
    "reconstruct": "interrupted; finished output is kept, rerun to resume",
    "fit": "interrupted; rerun with --ckpt_path CHECKPOINT to resume from the last checkpoint",
    "experiment": "interrupted; experiments that finished are kept",
}


def _verb_module(verb: str):
    return importlib.import_module(f"cellvae.cli.{VERBS[verb]}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per verb."""
    parser = argparse.ArgumentParser(
        prog="cellvae",
        description="Train variational autoencoders on microscopy volumes and look inside them.",
        epilog="Run 'cellvae VERB --help' for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"cellvae {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        module = _verb_module(verb)
        if verb in LIGHTNING_VERBS:
            sub.add_parser(verb, help=module.help_for(verb), add_help=False)
            continue
        verb_parser = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(verb_parser)
    return parser


def _run_recorded(verb: str, args: argparse.Namespace, argv: list[str]) -> int:
    """Check its input files (fast, before torch), then run a verb with its provenance record
    set, so every output it writes carries it."""
    from cellvae.cli.precheck import check_inputs
    from cellvae.io.provenance import for_command, recording

    check_inputs(verb, args)

    with recording(for_command(verb, args, argv)):
        return _verb_module(verb).run(args)


def _one_line_warning(verb: str, message, category, filename, lineno, file=None, line=None):
    """Warnings as ``cellvae VERB: warning: MESSAGE`` (first line only, no source line)."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    print(f"cellvae {verb}: warning: {text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellvae`` command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_VERBS:
        verb, rest = argv[0], argv[1:]
        runner = _verb_module(verb).run_lightning
        call = lambda: runner(verb, rest)  # noqa: E731
    else:
        args = build_parser().parse_args(argv)
        verb = args.verb
        call = lambda: _run_recorded(verb, args, argv)  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_one_line_warning, verb)
            return int(call() or 0)
    except CellvaeError as err:
        print(f"cellvae {verb}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        message = INTERRUPTED.get(verb, "interrupted; unfinished outputs were removed")
        print(f"cellvae {verb}: {message}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
