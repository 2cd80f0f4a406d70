"""Sub-pixel upsampling and the narrow full-resolution head of ``finest_latent: half``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cellvae.errors import ConfigError
from cellvae.models import HierarchicalVAE, build_model, make_likelihood
from cellvae.models.blocks import SubpixelUp, shuffle_up, upsample
from cellvae.training.module import VAEModule, build_vae


@pytest.mark.parametrize("factor", [2, 3])
def test_shuffle_up_is_pixel_shuffle_in_2d(factor: int) -> None:
    x = torch.randn(2, 3 * factor**2, 4, 5)
    assert torch.equal(shuffle_up(x, (factor, factor)), F.pixel_shuffle(x, factor))


def test_shuffle_up_places_each_channel_at_its_subvoxel_in_anisotropic_3d() -> None:
    x = torch.randn(1, 2 * 4, 3, 4, 5)  # factors (1, 2, 2): 4 sub-voxels per output channel
    y = shuffle_up(x, (1, 2, 2))
    assert y.shape == (1, 2, 3, 8, 10)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(y[0, c, :, i::2, j::2], x[0, c * 4 + i * 2 + j])


def test_subpixel_up_starts_as_nearest_upsampling_of_one_convolution() -> None:
    torch.manual_seed(0)
    up = SubpixelUp(2, 3, 4, (2, 2))
    plain = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():  # the shared sub-kernel: every 4th output filter (ICNR)
        plain.weight.copy_(up.conv.weight[::4])
        plain.bias.copy_(up.conv.bias[::4])
    x = torch.randn(2, 3, 6, 7)
    torch.testing.assert_close(up(x), upsample(plain(x), 2))


def _model(ndim: int = 2, **options) -> HierarchicalVAE:
    lik = make_likelihood("dlogistic", 1, bits=8)
    options = {"widths": (16, 16), "latent_channels": 2, "finest_latent": "half"} | options
    return HierarchicalVAE(ndim, 1, lik, **options)


@pytest.mark.parametrize(
    ("ndim", "patch", "downsample"),
    [(2, (16, 24), None), (3, (4, 16, 16), [(1, 2, 2), (1, 2, 2)])],
)
def test_shuffle_head_gives_full_resolution_parameters(ndim, patch, downsample) -> None:
    torch.manual_seed(0)
    model = _model(ndim, head_upsample="shuffle", head_width=8, downsample=downsample)
    x = torch.rand(2, 1, *patch) * 2 - 1
    out = model(x)
    assert out.params.shape == (2, model.likelihood.out_channels, *patch)
    loss = -model.likelihood.log_prob(out.params, x).mean()
    loss.backward()
    assert torch.isfinite(model.head[0].conv.weight.grad).all()
    assert model.head[0].conv.weight.grad.abs().sum() > 0


def _forward_flops(model: HierarchicalVAE) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 1, 32, 32))
    return counter.get_total_flops()


def test_narrow_shuffle_head_costs_a_third_of_the_full_width_head() -> None:
    w = 16
    wide = _model(widths=(w, 16))
    narrow = _model(widths=(w, 16), head_upsample="shuffle", head_width=w // 2)
    # the 3x3 mixing convolution of the head, per full-resolution pixel: w*w*9 multiply-adds
    # for nearest + conv at width w; on the half-resolution grid to 4 * w/2 channels, w*w/2*9
    head_saving = 2 * 32 * 32 * (w * w * 9 - w * (w // 2) * 9)
    # the head's residual block and the 1x1 output layer also shrink with the width
    assert _forward_flops(wide) - _forward_flops(narrow) >= head_saving


def test_head_options_are_checked_and_rebuilt_from_hyper_parameters() -> None:
    with pytest.raises(ConfigError, match="head_upsample"):
        build_model(finest_latent="half", head_upsample="bilinear")
    with pytest.raises(ConfigError, match="head_width"):
        build_model(finest_latent="half", head_width=0)
    module = VAEModule(
        widths=[8, 16], latent_channels=2, finest_latent="half", head_upsample="shuffle",
        head_width=4, iwae_samples=0, grid_images=0,
    )  # fmt: skip
    rebuilt = build_vae(module.hparams)
    shapes = {k: v.shape for k, v in module.model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert shapes["head.0.conv.weight"] == (4 * 4, 8, 3, 3)
    with pytest.raises(ConfigError, match=r"model\.head_upsample"):
        VAEModule(finest_latent="half", head_upsample="transpose")


@pytest.mark.parametrize(
    ("shape", "factor"),
    [((2, 12, 5, 7), (2, 2)), ((2, 6, 5, 7), (1, 3)), ((1, 8, 3, 4, 5), (1, 2, 2))],
)
def test_upsampling_keeps_a_channels_last_layout_and_the_values(shape, factor) -> None:
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    x = torch.randn(*shape)
    xl = x.contiguous(memory_format=fmt)
    near = upsample(xl, factor)
    assert near.is_contiguous(memory_format=fmt) and not near.is_contiguous()
    assert torch.equal(near, F.interpolate(x, scale_factor=factor, mode="nearest"))
    sub = shuffle_up(xl, factor)
    assert sub.is_contiguous(memory_format=fmt) and not sub.is_contiguous()
    assert torch.equal(sub, shuffle_up(x, factor))
