"""Which cellvae outputs a folder holds: the one discovery ``cellvae report`` and ``view`` share.

An output is recognised by the provenance its verb records (:mod:`cellvae.io.provenance`),
whatever its file name, or else by the name the workflow gives it (``recon.ome.zarr``,
``blurmap.ome.zarr``, ``blur.json``, ``cells.parquet`` or ``cells.h5ad``, ``samples.tif``,
``report.md``).
When a folder holds several outputs of one kind, the newest (last modified) is the one
shown and quoted, and the others are listed, so a rerun never mixes silently with an old
output. A folder whose outputs name different checkpoints says so (a cells table embedded
with a model fine-tuned from the folder's checkpoint does not count as another one).

A results folder is a folder holding at least one output; a parent folder is searched for
results folders in its ``<image>/<preset>/`` subfolders (the workflow's layout), else in its
direct subfolders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cellvae.io.atomic import LOCK_SUFFIX, PARTIAL_SUFFIX


@dataclass(frozen=True)
class Kind:
    """One kind of output: the verb that writes it, its usual name and what to call it."""

    key: str
    verb: str | None
    folder: bool
    suffixes: tuple[str, ...]
    default: str
    what: str
    aliases: tuple[str, ...] = ()  # other usual names (found without provenance too)


#: the kinds of output, in the order their layers are stacked and their report sections come.
KINDS = (
    Kind("recon", "reconstruct", True, (), "recon.ome.zarr", "reconstruction"),
    Kind("blurmap", "blur", True, (), "blurmap.ome.zarr", "blur map"),
    Kind("blur", "blur", False, (".json",), "blur.json", "blur summary"),
    Kind(
        "cells",
        "embed",
        False,
        (".parquet", ".h5ad"),
        "cells.parquet",
        "cells table",
        ("cells.h5ad",),
    ),
    Kind("samples", "sample", False, (".tif", ".tiff"), "samples.tif", "prior samples"),
    Kind("report", None, False, (".md",), "report.md", "report"),
)
KIND = {k.key: k for k in KINDS}


@dataclass
class Found:
    """The outputs of one results folder: ``outputs[kind]`` lists paths, newest first.

    ``provenance[path]`` holds what each output's verb recorded (None for outputs found by
    name only).
    """

    folder: Path
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    provenance: dict[Path, dict | None] = field(default_factory=dict)

    def get(self, key: str) -> Path | None:
        """The output of kind ``key`` to show and quote: the newest, or None."""
        paths = self.outputs.get(key)
        return paths[0] if paths else None

    def inputs(self, key: str) -> dict:
        """The input paths (role -> path) recorded by the newest output of kind ``key``."""
        path = self.get(key)
        return ((self.provenance.get(path) or {}).get("inputs") or {}) if path else {}

    @property
    def name(self) -> str:
        """``image/preset`` of the workflow layout: the resolved folder's last two names."""
        parts = self.folder.resolve().parts
        return "/".join(parts[-2:]) if len(parts) > 2 else self.folder.resolve().name

    def checkpoints(self) -> list[str]:
        """The distinct checkpoints named by the outputs that are shown (usually one).

        A table embedded by a model fine-tuned on its cells (``embed --finetune``: its
        provenance names that model as ``ckpt`` and the checkpoint given as
        ``finetuned_from``) counts as the checkpoint it was fine-tuned from.
        """
        named = []
        for kind in KINDS:
            if self.get(kind.key):
                inputs = self.inputs(kind.key)
                named.append(inputs.get("finetuned_from") or inputs.get("ckpt"))
        return sorted({os.path.abspath(c) for c in named if c})

    def listing(self, choices_only: bool = False) -> list[str]:
        """What was found, one line per kind present (several: the newest is shown).

        ``choices_only`` keeps the lines a user should know about: kinds found several
        times, and outputs that come from different checkpoints.
        """
        lines = []
        for kind in KINDS:
            paths = self.outputs.get(kind.key, [])
            if len(paths) == 1 and not choices_only:
                lines.append(f"{kind.what}: {paths[0].name}")
            elif len(paths) > 1:
                others = ", ".join(p.name for p in paths[1:])
                lines.append(
                    f"{kind.what}: {paths[0].name} (the newest of {len(paths)}; also {others})"
                )
        ckpts = self.checkpoints()
        if len(ckpts) > 1:
            lines.append(f"these outputs come from {len(ckpts)} checkpoints: {', '.join(ckpts)}")
        return lines


def _kind_of(path: Path, verb: str | None) -> Kind | None:
    """The kind of ``path``: by its verb's provenance first, else by its usual name."""
    is_dir = path.is_dir()
    suffix = path.suffix.lower()
    if verb is not None:
        for kind in KINDS:
            if kind.verb == verb and kind.folder == is_dir and (is_dir or suffix in kind.suffixes):
                return kind
    names = lambda k: (k.default, *k.aliases)  # noqa: E731
    return next((k for k in KINDS if path.name in names(k) and k.folder == is_dir), None)


def _may_be_output(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith((PARTIAL_SUFFIX, LOCK_SUFFIX)):
        return False
    if path.is_dir():
        return (path / "zarr.json").exists() or (path / ".zgroup").exists()
    return path.suffix.lower() in {s for k in KINDS for s in k.suffixes}


def outputs_in(folder: str | os.PathLike) -> Found:
    """The outputs directly inside ``folder`` (not in its subfolders), newest first."""
    from cellvae.io.provenance import read_provenance

    found = Found(Path(folder))
    if not found.folder.is_dir():
        return found
    dated: dict[str, list[tuple[float, str, Path]]] = {}
    for path in found.folder.iterdir():
        if not _may_be_output(path):
            continue
        prov = read_provenance(path)
        kind = _kind_of(path, (prov or {}).get("verb"))
        if kind is None:
            continue
        found.provenance[path] = prov
        dated.setdefault(kind.key, []).append((path.stat().st_mtime, path.name, path))
    for kind in KINDS:
        if kind.key in dated:
            found.outputs[kind.key] = [p for *_, p in sorted(dated[kind.key], reverse=True)]
    return found


def find_results(path: str | os.PathLike) -> list[Found]:
    """``path`` itself if it holds outputs, else the results folders below it.

    Below means its ``<image>/<preset>/`` subfolders (the workflow's layout), else its
    direct subfolders; the list is sorted by folder.
    """
    path = Path(path)
    here = outputs_in(path)
    if here.outputs:
        return [here]
    if not path.is_dir():
        return []
    for pattern in ("*/*", "*"):
        found = [outputs_in(p) for p in sorted(path.glob(pattern)) if p.is_dir()]
        found = [f for f in found if f.outputs]
        if found:
            return found
    return []
