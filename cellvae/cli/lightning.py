"""``cellvae fit | validate | test``: placeholder until the training issue lands."""

from collections.abc import Sequence

from cellvae.errors import CellvaeError


def help_for(verb: str) -> str:
    """One line for ``cellvae --help``."""
    return f"({verb}: not implemented yet)"


def run_lightning(verb: str, argv: Sequence[str]) -> int:
    """Refuse clearly."""
    raise CellvaeError("this verb is not implemented yet")
