"""How the global latent reaches the decoder: a generated top map and FiLM, BN-VAE, a variance
floor, and scales without spatial groups (where ``g`` alone shapes the state)."""

from __future__ import annotations

import pytest
import torch

from cellvae.errors import ConfigError
from cellvae.models import HierarchicalVAE, build_model, make_likelihood
from cellvae.models.global_latent import BN_SCALE, map_shape_for, modulate


def _model(**options) -> HierarchicalVAE:
    lik = make_likelihood("dlogistic", 1, bits=8)
    options = {"widths": (8, 8, 16), "latent_channels": 2, "global_dim": 5} | options
    return HierarchicalVAE(2, 1, lik, **options)


def _perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def _top_state(model: HierarchicalVAE, g: torch.Tensor, top=(4, 4)) -> torch.Tensor:
    """What ``g`` adds to the top decoder state, ``(B, w, *top)``."""
    if model.global_decoder == "map":
        return model.global_latent.top_map(g, top)
    return model.global_latent.broadcast(g, len(model.widths) - 1).expand(-1, -1, *top)


def test_the_map_route_can_place_things_and_the_bias_route_cannot() -> None:
    """The first design added ``g`` as a constant over space: two codes differ by the same
    amount everywhere, so ``g`` could not say where (or how big) a cell is. The map varies."""
    torch.manual_seed(0)
    g = torch.randn(2, 5)
    for route, varies in (("bias", False), ("map", True)):
        model = _model(global_decoder=route)
        _perturb(model)
        diff = _top_state(model, g[:1]) - _top_state(model, g[1:])
        spread = diff.flatten(2).std(dim=2)  # over positions, per channel
        assert bool((spread > 1e-4).any()) is varies, route


def test_the_map_has_at_most_four_cells_per_axis_and_fits_any_top() -> None:
    assert map_shape_for((16, 16)) == (4, 4)
    assert map_shape_for((2, 8, 8)) == (2, 4, 4)
    torch.manual_seed(0)
    model = _model(global_map=(4, 4))
    g = torch.randn(3, 5)
    at_map = model.global_latent.top_map(g, (4, 4))
    assert at_map.shape == (3, 16, 4, 4)
    # the same map, resized (not retrained) for a larger input
    bigger = model.global_latent.top_map(g, (8, 12))
    assert bigger.shape == (3, 16, 8, 12) and torch.isfinite(bigger).all()


def test_film_scales_and_shifts_the_state() -> None:
    h = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, 2, 1, 2)
    scale = torch.tensor([0.5, -1.0]).reshape(1, 2, 1, 1)
    shift = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1)
    expected = torch.tensor([[[[2.5, 4.0]], [[2.0, 2.0]]]])  # h (1 + s) + b
    torch.testing.assert_close(modulate(h, (scale, shift)), expected)
    assert modulate(h, None) is h


def test_every_group_and_the_output_depend_on_g_through_the_map() -> None:
    torch.manual_seed(0)
    model = _model()
    _perturb(model)
    fixed = [z.detach() for z in model.top_down(None, 1, (16, 16), temperature=0.0)[1]]
    g = fixed[0].clone().requires_grad_(True)
    params, _, priors, _ = model.top_down(None, 1, (16, 16), latents=[g, *fixed[1:]])
    for prior in priors[1:]:
        (grad,) = torch.autograd.grad(prior.mean.sum(), g, retain_graph=True)
        assert grad.abs().sum() > 0
    (grad,) = torch.autograd.grad(params.sum(), g)
    assert grad.abs().sum() > 0


def test_batch_normalised_mean_has_the_fixed_scale_and_trains_as_it_encodes() -> None:
    """BN-VAE: each unit's posterior mean has standard deviation ``BN_SCALE`` over the data
    (the committed rate: KL >= BN_SCALE**2 / 2 per unit on average), even where the raw mean
    barely varies (here by ~1e-4); and a batch is encoded the same in training and inference
    (batch renormalisation), so a decoder trained on it decodes what ``embed`` gives."""
    torch.manual_seed(0)
    model = _model(global_norm="batch").train()
    _perturb(model)
    data = torch.rand(64, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        for _ in range(200):  # the running statistics settle on the data
            model(data[torch.randint(64, (16,))])
        post = model(data).posteriors[0]
    std = post.mean.std(dim=0, unbiased=False)
    torch.testing.assert_close(std, torch.full((5,), BN_SCALE), atol=0.05, rtol=0)
    kl = post.kl_standard_normal().mean(0)
    assert bool((kl >= BN_SCALE**2 / 2 * 0.8).all())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.embed(data)[0], post.mean, atol=0.02, rtol=0.02)
        mean, _ = model.embed(data[:1])  # one input alone, without a batch
    torch.testing.assert_close(mean, post.mean[:1], atol=0.02, rtol=0.02)


def test_logvar_floor_bounds_the_posterior_variance_from_below() -> None:
    torch.manual_seed(0)
    model = _model(global_logvar_floor=-2.0)
    last = model.global_latent.posterior[-1]
    with torch.no_grad():
        last.bias[5:] = -8.0  # ask for a very narrow posterior
    _, logvar = model.embed(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert bool((logvar > -2.0).all())
    assert bool((_model().embed(torch.rand(1, 1, 16, 16))[1] < 5).all())


def test_a_scale_without_groups_is_shaped_by_g_alone() -> None:
    torch.manual_seed(0)
    model = _model(groups_per_scale=(1, 1, 0))
    _perturb(model)
    assert model.group_names == ["g", "z1", "z0"]
    assert model.units == [(2, None), (1, 1), (0, 0)]
    out = model(torch.rand(2, 1, 16, 16) * 2 - 1)
    assert [tuple(k.shape) for k in out.kl] == [(2, 5), (2, 2, 8, 8), (2, 2, 16, 16)]
    zs = model.top_down(None, 1, (16, 16), temperature=0.0)[1]
    base = model.top_down(None, 1, (16, 16), latents=zs)[0]
    moved = model.top_down(None, 1, (16, 16), latents=[zs[0] + 1.0, *zs[1:]])[0]
    assert not torch.allclose(base, moved)
    with pytest.raises(ConfigError, match="global latent"):
        _model(groups_per_scale=(1, 0, 1), global_dim=0)


def test_build_model_sizes_the_map_from_the_patch() -> None:
    model = build_model(
        "hierarchical", ndim=3, patch_size=(8, 32, 32), widths=[4, 8], latent_channels=2,
        global_dim=3, downsample=[(1, 2, 2)],
    )  # fmt: skip
    assert model.global_latent.map_shape == (4, 4, 4)  # top (8, 16, 16), at most 4 per axis
    out = model(torch.rand(1, 1, 8, 32, 32) * 2 - 1)
    assert out.params.shape == (1, 2, 8, 32, 32)
