"""Check that every direct dependency is installed at exactly its declared floor.

Run with the interpreter of the environment that ``.ci/lowest`` built with uv's
``--resolution lowest-direct``:

    python .ci/floors.py EXTRA [EXTRA ...]

A floor the resolver could not install (because another dependency needs more) is a floor
that no test has run on, so it fails here just like a test does. Prints one line per
dependency and exits 1 if any is above (or below) its floor or missing.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared(extras: list[str]) -> list[Requirement]:
    """The base dependencies and those of ``extras``, without cellvae's own extras."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [req for req in map(Requirement, lines) if req.name != project["name"]]


def floor(req: Requirement) -> Version | None:
    """The lower bound of ``>=`` (or ``==``) in a requirement, if it has one."""
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def main(extras: list[str]) -> int:
    bad = 0
    for req in declared(extras):
        low = floor(req)
        try:
            have = Version(version(req.name))
        except PackageNotFoundError:
            print(f"MISSING  {req}")
            bad += 1
            continue
        public = Version(have.public)  # 2.13.0+cpu is the 2.13.0 release
        ok = low is None or public == low
        bad += not ok
        print(
            f"{'ok' if ok else 'ABOVE' if public > low else 'BELOW':8} {req.name} {have}"
            + ("" if ok else f" (floor {low})")
        )
    if bad:
        print(
            f"{bad} dependencies are not at their declared floor; raise the floor in "
            "pyproject.toml to what the resolver installs, or find what holds it up"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
