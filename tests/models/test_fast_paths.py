"""The faster formulations in the models compute the same maths as the plain ones.

``upsample`` replaces ``F.interpolate(mode="nearest")`` and the decoder mixes channels with
its 1x1 convolution before upsampling instead of after; both must give the old outputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cellvae.models.blocks import upsample
from cellvae.models.factory import build_model


@pytest.mark.parametrize(
    "shape, factor",
    [((2, 3, 5, 7), 2), ((2, 3, 5, 7), (1, 3)), ((1, 2, 3, 4, 5), (1, 2, 2)), ((1, 2, 3, 4, 5), 2)],
)
def test_upsample_equals_nearest_interpolate(shape, factor):
    x = torch.randn(shape)
    sides = (factor,) * (len(shape) - 2) if isinstance(factor, int) else factor
    ref = F.interpolate(x, size=[n * f for n, f in zip(shape[2:], sides)], mode="nearest")
    assert torch.equal(upsample(x, factor), ref)


def _reference_reconstruct(m, x):
    """The decoder as first written: upsample the state, then the 1x1 ``dec_up`` mix."""
    feats = m.encode(x)
    top = tuple(s // d for s, d in zip(x.shape[2:], m.downsampling))
    h = m.top_state.expand(x.shape[0], -1, *top)
    scale = len(m.widths) - 1
    for i in reversed(range(len(m.stages))):
        s = m.stage_scale[i]
        while s < scale:
            sides = m.scale_factors[scale]
            size = [n * f for n, f in zip(h.shape[2:], sides)]
            h = m.dec_up[scale - 1](F.interpolate(h, size=size, mode="nearest"))
            scale -= 1
        h = m.stages[i](h, feats[s], use_mean=True)[0]
    if m.finest_latent == "half":
        size = [n * f for n, f in zip(h.shape[2:], m.stem_factor)]
        h = m.head(F.interpolate(h, size=size, mode="nearest"))
    return m.to_params(F.gelu(h))


@pytest.mark.parametrize("finest_latent", ["full", "half"])
def test_decoder_reordering_keeps_outputs(finest_latent):
    torch.manual_seed(0)
    m = build_model(widths=[8, 16, 24], latent_channels=4, finest_latent=finest_latent)
    # give the zero-initialised branches weights so every path carries signal
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        new = m.reconstruct_params(x)
        old = _reference_reconstruct(m, x)
    assert new.shape == old.shape
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)
    assert old.abs().max() > 1e-2  # the comparison is not between two near-zero tensors
