"""User errors shown in the viewer as one-line notifications, never as a traceback dialog."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cellvae.errors import CellvaeError


def show_problem(message: str, error: bool = False) -> None:
    """Show ``message`` as a napari warning (or error) notification."""
    from napari.utils.notifications import show_error, show_warning

    (show_error if error else show_warning)(message)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`CellvaeError` raised inside into an error notification."""
    try:
        yield
    except CellvaeError as err:
        show_problem(str(err), error=True)
