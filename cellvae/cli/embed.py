"""``cellvae embed``: placeholder until its issue lands."""

import argparse

from cellvae.errors import CellvaeError

HELP = "(embed: not implemented yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace) -> int:
    """Refuse clearly."""
    raise CellvaeError("this verb is not implemented yet")
