"""Cell-centred crops for embedding: the model's patch around each cell, the cell alone.

A crop spans the model's patch centred on the cell's rounded centroid and is mirrored where
it leaves the image. ``masked`` crops (the default of ``cellvae embed``) keep the cell and a
rim of :data:`MASK_GROW` voxels and set everything else (neighbours, unlabelled objects, the
mirrored border) to the crop's background level, so the code describes this cell only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cellvae.errors import CellvaeError


def crop_centered(image, center: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """The ``patch``-sized crop of ``image`` (``(C, *S)``, lazily indexable) centred on ``center``.

    The crop spans ``[c - p // 2, c - p // 2 + p)`` per axis; parts outside the image are
    filled by mirroring the image at its border.
    """
    spatial = image.shape[1:]
    lo = [int(c) - p // 2 for c, p in zip(center, patch)]
    hi = [a + p for a, p in zip(lo, patch)]
    read = tuple(slice(max(a, 0), min(b, s)) for a, b, s in zip(lo, hi, spatial))
    crop = np.asarray(image[(slice(None), *read)])
    pad = [(0, 0)] + [(max(-a, 0), max(b - s, 0)) for a, b, s in zip(lo, hi, spatial)]
    return np.pad(crop, pad, mode="symmetric") if any(sum(p) for p in pad) else crop


NEIGHBOURS = ("masked", "kept")
#: the cell's mask is grown by this many voxels before the rest is masked (its blurred rim)
MASK_GROW = 2


def isolate_cell(crop: np.ndarray, own: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """``crop`` ``(C, *S)`` with everything farther than :data:`MASK_GROW` voxels from the
    cell (``own``, a boolean ``S`` mask), and everything outside the image (``inside``
    false: the mirrored border of the crop), set to the crop's background level.

    The background level is, per channel, the median of the voxels outside the grown cell:
    robust to other cells as long as they cover less than half of that region. Neighbours,
    unlabelled objects and the mirrored copy of a cell at the image border are all removed,
    so the crop shows this cell alone, at the centre.
    """
    from scipy import ndimage

    if not own.any():
        return crop
    grown = ndimage.binary_dilation(own, iterations=MASK_GROW)
    if inside is not None:
        grown &= inside
    if grown.all():
        return crop
    out = crop.copy()
    for c in range(crop.shape[0]):
        out[c][~grown] = np.median(crop[c][~grown])
    return out


def inside_image(center: Sequence[int], patch: Sequence[int], spatial: Sequence[int]) -> np.ndarray:
    """Boolean ``patch`` mask of the voxels of a centred crop that lie inside the image (the
    rest is mirrored by :func:`crop_centered`)."""
    inside = np.ones(tuple(int(p) for p in patch), dtype=bool)
    for axis, (c, p, s) in enumerate(zip(center, patch, spatial)):
        pos = np.arange(p) + int(c) - p // 2
        shape = [1] * len(patch)
        shape[axis] = p
        inside &= ((pos >= 0) & (pos < s)).reshape(shape)
    return inside


def cell_crops(
    image, labels, table: pd.DataFrame, names: str, patch: Sequence[int], neighbours: str
) -> np.ndarray:
    """The centred crops ``(N, C, *patch)`` of the cells in ``table`` (rows of
    :func:`measure_cells`), the cell alone (``masked``, :func:`isolate_cell`) or with what
    surrounds it (``kept``)."""
    if neighbours not in NEIGHBOURS:
        raise CellvaeError(f"neighbours: {neighbours!r}; choose one of {', '.join(NEIGHBOURS)}")
    centers = np.rint(table[[f"centroid_{a}" for a in names]].to_numpy()).astype(np.int64)
    crops = []
    for label, center in zip(table["label"].to_numpy(), centers):
        crop = crop_centered(image, center, patch)
        if neighbours == "masked":
            label_crop = crop_centered(_Leading(labels), center, patch)[0]
            inside = inside_image(center, patch, labels.shape)
            crop = isolate_cell(crop, (label_crop == label) & inside, inside)
        crops.append(crop)
    return np.stack(crops)


class _Leading:
    """A lazily indexable array seen with a leading axis of length 1 (labels as ``(1, *S)``)."""

    def __init__(self, array):
        self.array, self.shape = array, (1, *array.shape)

    def __getitem__(self, index):
        return np.asarray(self.array[index[1:]])[None]
