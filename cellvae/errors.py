"""User-facing errors.

Anything a user can cause (a missing file, a bad option, a config value out of range) is raised
as :class:`CellvaeError` with one line that names the file or field and the problem. The
``cellvae`` command prints that line and exits non-zero, without a traceback.
"""


class CellvaeError(Exception):
    """An error caused by user input, reported as one line without a traceback."""

    exit_code = 1


class ConfigError(CellvaeError, ValueError):
    """A configuration value is invalid; the message names the field and allowed values."""

    exit_code = 2


def check_choice(field: str, value: object, allowed: list[object] | tuple[object, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{field}: {value!r} is not allowed; choose one of {choices}")


def check_range(
    field: str, value: float, low: float | None = None, high: float | None = None
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (either bound optional)."""
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ConfigError(f"{field}: {value!r} is out of range; allowed [{lo}, {hi}]")
