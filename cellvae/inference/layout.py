"""How an image's axes meet a model: which axes the model sees and which are looped over.

A model with ``ndim`` spatial axes sees the last ``ndim`` of ``z, y, x`` and the channel axis
``c``; every other axis (``t``, and ``z`` for a 2D model on a volume) is looped over, plane by
plane. Blocks of pixels are moved between storage order and the canonical order
``(*loop, C, *spatial)`` that the tiling code works in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cellvae.errors import CellvaeError


@dataclass(frozen=True)
class Layout:
    """Axis roles of an image for a model of ``ndim`` spatial axes.

    Attributes
    ----------
    axes : storage order, e.g. ``"tczyx"``.
    loop, spatial : positions (in ``axes``) of the looped and the model's spatial axes.
    channel : position of ``c`` or None (then the model sees one channel).
    """

    axes: str
    loop: tuple[int, ...]
    channel: int | None
    spatial: tuple[int, ...]

    @classmethod
    def of(cls, axes: str, ndim: int, source: str = "image") -> Layout:
        """Layout of ``axes`` for an ``ndim``-D model; refuses images with too few axes."""
        seen = "zyx"[3 - ndim :]
        if any(a not in axes for a in seen):
            raise CellvaeError(f"{source}: axes {axes!r} lack {seen!r} needed by a {ndim}D model")
        spatial = tuple(axes.index(a) for a in seen)
        channel = axes.index("c") if "c" in axes else None
        loop = tuple(i for i, a in enumerate(axes) if i not in spatial and i != channel)
        return cls(axes, loop, channel, spatial)

    def channels(self, shape: tuple[int, ...]) -> int:
        """Number of channels of an image of ``shape``."""
        return 1 if self.channel is None else shape[self.channel]

    def index(self, loop: list[slice], spatial: list[slice]) -> tuple[slice, ...]:
        """Storage-order index of a region given per loop axis and per spatial axis."""
        idx = [slice(None)] * len(self.axes)
        for pos, s in zip(self.loop, loop):
            idx[pos] = s
        for pos, s in zip(self.spatial, spatial):
            idx[pos] = s
        return tuple(idx)

    def _order(self) -> list[int]:
        mid = [] if self.channel is None else [self.channel]
        return [*self.loop, *mid, *self.spatial]

    def to_canonical(self, block: np.ndarray) -> np.ndarray:
        """Storage-order block → ``(*loop, C, *spatial)``."""
        out = np.transpose(block, self._order())
        return out if self.channel is not None else np.expand_dims(out, len(self.loop))

    def from_canonical(self, block: np.ndarray) -> np.ndarray:
        """``(*loop, C, *spatial)`` → storage order (inverse of :meth:`to_canonical`)."""
        if self.channel is None:
            block = np.squeeze(block, axis=len(self.loop))
        return np.transpose(block, np.argsort(self._order()))


class ChannelView:
    """A lazily indexed ``(C, *spatial)`` view of one loop position of a storage-order array.

    Indexing with ``(channel_slice, *spatial_slices)`` reads only that region.
    """

    def __init__(self, array, layout: Layout, loop: Sequence[int] = ()) -> None:
        self.array, self.layout = array, layout
        self.loop = tuple(loop) or (0,) * len(layout.loop)
        shape = tuple(array.shape)
        self.shape = (layout.channels(shape), *[shape[p] for p in layout.spatial])

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        channel, *spatial = index
        loop = [slice(i, i + 1) for i in self.loop]
        block = self.layout.to_canonical(np.asarray(self.array[self.layout.index(loop, spatial)]))
        return block.reshape(block.shape[len(self.loop) :])[channel]
