"""Convolutional building blocks shared by the VAEs, for ``ndim`` 2 or 3.

``ndim`` picks ``Conv2d``/``Conv3d`` (and friends) here, so no model has a 2D and a 3D copy.
Tensors are ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def soft_clamp(x: Tensor, limit: float) -> Tensor:
    """Smoothly squash ``x`` into ``(-limit, limit)``: ``limit * tanh(x / limit)``.

    Near zero it is the identity, so it only acts on runaway log-variances/log-scales.
    """
    return limit * torch.tanh(x / limit)


def soft_floor(x: Tensor, floor: float) -> Tensor:
    """Smooth lower bound: ``floor + softplus(x - floor)`` (≈ ``x`` well above ``floor``)."""
    return floor + F.softplus(x - floor)


def conv(
    ndim: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int | tuple[int, ...] = 1,
) -> nn.Module:
    """``Conv2d``/``Conv3d`` with "same" padding for odd kernels (halving for stride 2).

    ``stride`` may differ per axis, e.g. ``(1, 2, 2)`` keeps Z and halves Y and X.
    """
    cls = {2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)


def avg_pool(x: Tensor, factor: int | tuple[int, ...] = 2) -> Tensor:
    """Average-pool the spatial axes by ``factor`` (one int, or one per axis)."""
    if factor == 1 or (not isinstance(factor, int) and set(factor) == {1}):
        return x
    pool = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
    return pool(x, kernel_size=factor, stride=factor)


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` (4D or 5D) is laid out channels-last with more than one channel."""
    if x.ndim not in (4, 5) or x.shape[1] == 1:
        return False
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.is_contiguous(memory_format=fmt) and not x.is_contiguous()


def upsample(x: Tensor, factor: int | tuple[int, ...] = 2) -> Tensor:
    """Nearest-neighbour upsampling of the spatial axes by ``factor`` (one int, or per axis).

    The output keeps the input's layout (channels-first or channels-last), so the next
    convolution needs no conversion copy.
    """
    if factor == 1 or (not isinstance(factor, int) and set(factor) == {1}):
        return x
    sides = (factor,) * (x.ndim - 2) if isinstance(factor, int) else tuple(factor)
    # one broadcast copy (B, C, n0, 1, n1, 1, ...) -> (B, C, n0, f0, n1, f1, ...): the same
    # values as F.interpolate(mode="nearest") without its slower CPU kernel and extra copy
    spatial = x.shape[2:]
    last = is_channels_last(x)
    y = x.movedim(1, -1) if last else x  # a view: channels-last memory is (B, *S, C)
    b, c = x.shape[:2]
    view, grown = [b], [b]
    for n, f in zip(spatial, sides):
        view += [n, 1]
        grown += [n, f]
    big = [n * f for n, f in zip(spatial, sides)]
    if last:
        y = y.reshape(*view, c).expand(*grown, c).reshape(b, *big, c)
        return y.movedim(-1, 1)
    return y.reshape(*view[:1], c, *view[1:]).expand(*grown[:1], c, *grown[1:]).reshape(b, c, *big)


def shuffle_up(x: Tensor, factor: tuple[int, ...]) -> Tensor:
    """Sub-pixel upsampling: ``(B, C*prod(f), *S) -> (B, C, *(S*f))`` (``pixel_shuffle`` in nD).

    Input channel ``c * prod(f) + offset`` becomes the sub-pixel ``offset`` (row-major over the
    axes) of output channel ``c``, the channel order of :func:`torch.nn.functional.pixel_shuffle`.
    The output keeps the input's layout (one copy either way).
    """
    f = tuple(int(v) for v in factor)
    b, cf, *spatial = x.shape
    c = cf // math.prod(f)
    n = len(spatial)
    big = [s * k for s, k in zip(spatial, f)]
    if is_channels_last(x):
        # (B, *S, C*k) view -> (B, S0..Sn, C, f0..fn) -> (B, S0, f0, S1, f1, ..., C)
        y = x.movedim(1, -1).reshape(b, *spatial, c, *f)
        order = [0] + [a for i in range(n) for a in (1 + i, 2 + n + i)] + [1 + n]
        return y.permute(order).reshape(b, *big, c).movedim(-1, 1)
    y = x.reshape(b, c, *f, *spatial)
    # (B, C, f0..fn, S0..Sn) -> (B, C, S0, f0, S1, f1, ...)
    order = [0, 1] + [a for i in range(n) for a in (2 + n + i, 2 + i)]
    return y.permute(order).reshape(b, c, *big)


class SubpixelUp(nn.Module):
    """Learned upsampling by ``factor``: a 3×3 convolution at the coarse resolution to
    ``out * prod(factor)`` channels, then :func:`shuffle_up` (Shi et al. 2016).

    The convolution runs on the coarse grid, so it costs what a convolution to ``out``
    channels on the fine grid would while seeing a 3×3 coarse neighbourhood, and it computes
    nothing twice (a convolution after nearest upsampling works on repeated values). Its
    sub-kernels start identical (ICNR, Aitken et al. 2017): at initialisation it is nearest
    upsampling of one convolution, free of checkerboard artefacts.
    """

    def __init__(self, ndim: int, in_channels: int, out_channels: int, factor: tuple[int, ...]):
        super().__init__()
        self.factor = tuple(int(f) for f in factor)
        k = math.prod(self.factor)
        self.conv = conv(ndim, in_channels, out_channels * k, 3)
        with torch.no_grad():
            base = conv(ndim, in_channels, out_channels, 3)
            self.conv.weight.copy_(base.weight.repeat_interleave(k, dim=0))
            self.conv.bias.copy_(base.bias.repeat_interleave(k, dim=0))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, *S) -> (B, out, *(S * factor))``."""
        return shuffle_up(self.conv(x), self.factor)


class Bottleneck(nn.Module):
    """Pre-activation bottleneck ``GELU→1×1→GELU→3×3→GELU→3×3→GELU→1×1`` (vdvae style).

    Parameters
    ----------
    ndim : int
        2 or 3.
    in_channels, mid_channels, out_channels : int
        Widths of the input, the two 3×3 convolutions and the output.
    last_init : {'default', 'zero'} or float
        ``'zero'`` zero-initialises the last 1×1 convolution (its output starts at 0);
        a float scales its default initialisation.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        last_init: str | float = "default",
    ) -> None:
        super().__init__()
        self.c1 = conv(ndim, in_channels, mid_channels, 1)
        self.c2 = conv(ndim, mid_channels, mid_channels, 3)
        self.c3 = conv(ndim, mid_channels, mid_channels, 3)
        self.c4 = conv(ndim, mid_channels, out_channels, 1)
        with torch.no_grad():
            if last_init == "zero":
                self.c4.weight.zero_()
                self.c4.bias.zero_()
            elif not isinstance(last_init, str):
                self.c4.weight.mul_(last_init)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, *S) -> (B, out, *S)``."""
        x = self.c1(F.gelu(x))
        x = self.c2(F.gelu(x))
        x = self.c3(F.gelu(x))
        return self.c4(F.gelu(x))


class ResBlock(nn.Module):
    """Residual bottleneck ``x + f(x)`` with a controllable start for ``f``.

    Parameters
    ----------
    ndim, width : int
        Dimensionality and channel count (kept).
    mid : int or None
        Bottleneck width; defaults to ``max(width // 4, 8)``.
    last_init : {'default', 'zero'} or float
        See :class:`Bottleneck`: a float ``1/sqrt(n_blocks)`` keeps the variance of a stack of
        ``n_blocks`` residual blocks bounded at initialisation; ``'zero'`` makes the block start
        as the identity.
    """

    def __init__(
        self, ndim: int, width: int, mid: int | None = None, last_init: str | float = "default"
    ) -> None:
        super().__init__()
        mid = mid if mid is not None else max(width // 4, 8)
        self.branch = Bottleneck(ndim, width, mid, width, last_init=last_init)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, width, *S) -> (B, width, *S)``."""
        return x + self.branch(x)


def residual_scale(n_blocks: int) -> float:
    """Initial scale ``1/sqrt(n_blocks)`` of the last layer of each of ``n_blocks`` branches."""
    return 1.0 / math.sqrt(max(n_blocks, 1))
