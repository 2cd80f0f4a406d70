"""HierarchicalVAE options: global latent, several groups per scale, finest latent at 1/2."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from cellvae.models import HierarchicalVAE, make_likelihood


def _model(ndim: int = 2, **options) -> HierarchicalVAE:
    lik = make_likelihood("dlogistic", 1, bits=8)
    options = {"widths": (8, 8, 16), "latent_channels": (2, 3, 4), "global_dim": 5} | options
    return HierarchicalVAE(ndim, 1, lik, **options)


def _perturb(model: torch.nn.Module) -> None:
    """Move the zero-initialised layers so priors are not trivially N(0, I)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize(
    ("ndim", "patch", "groups", "downsample", "finest", "sides"),
    [
        # sides: spatial shape of each scale's latents, finest scale first
        (2, (16, 32), (1, 2, 3), None, "full", [(16, 32), (8, 16), (4, 8)]),
        (2, (16, 16), 2, [(1, 2), 2], "full", [(16, 16), (16, 8), (8, 4)]),
        (2, (16, 16), 1, None, "half", [(8, 8), (4, 4), (2, 2)]),
        (3, (4, 16, 16), (2, 1, 1), [(1, 2, 2)] * 2, "full", [(4, 16, 16), (4, 8, 8), (4, 4, 4)]),
        (3, (8, 8, 16), 1, [(1, 1, 2), (2, 2, 2), 2], "half", [(8, 8, 8), (4, 4, 4), (2, 2, 2)]),
    ],
)
def test_shapes_names_and_kl_of_every_group(ndim, patch, groups, downsample, finest, sides):
    torch.manual_seed(0)
    model = _model(ndim, groups_per_scale=groups, downsample=downsample, finest_latent=finest)
    _perturb(model)
    per_scale = [groups] * 3 if isinstance(groups, int) else list(groups)
    expected_names = ["g"]
    for s in (2, 1, 0):
        k = per_scale[s]
        expected_names += [f"z{s}"] if k == 1 else [f"z{s}_{j}" for j in range(k)]
    assert model.group_names == expected_names
    down = tuple(p // t for p, t in zip(patch, sides[-1]))
    assert model.downsampling == down
    x = torch.rand(2, 1, *patch) * 2 - 1
    out = model(x)
    assert out.params.shape == (2, 2, *patch)
    assert len(out.kl) == len(out.z) == len(out.priors) == len(expected_names)
    assert out.kl[0].shape == out.z[0].shape == (2, 5)
    scales = [int(n[1]) for n in expected_names[1:]]
    for s, kl, q, p, z in zip(scales, out.kl[1:], out.posteriors[1:], out.priors[1:], out.z[1:]):
        assert kl.shape == z.shape == (2, model.latent_channels[s], *sides[s])
        torch.testing.assert_close(kl, kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std)))
    samples = model.sample_params(3, patch)
    assert samples.shape == (3, 2, *patch) and torch.isfinite(samples).all()


def test_global_kl_is_the_closed_form_for_a_known_posterior() -> None:
    torch.manual_seed(0)
    model = _model()
    last = model.global_latent.posterior[-1]
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.0])
    # raw log-variances that the soft clamp (10 tanh(v / 10)) maps to exactly 0 and ln 2
    raw = torch.tensor([0.0, 0.0, 10 * math.atanh(math.log(2.0) / 10), 0.0, 0.0])
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.cat([mean, raw]))
    out = model(torch.rand(3, 1, 16, 16) * 2 - 1)
    # KL(N(m, s2) || N(0, 1)) = (m^2 + s2 - 1 - ln s2) / 2 per dimension:
    # 0.125, 0.5, (2 - 1 - ln 2) / 2 = 0.1534264, 2, 0
    expected = torch.tensor([0.125, 0.5, 0.1534264, 2.0, 0.0])
    torch.testing.assert_close(out.kl[0], expected.expand(3, 5), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.priors[0].mean, torch.zeros(3, 5))
    torch.testing.assert_close(out.priors[0].logvar, torch.zeros(3, 5))


def test_embed_is_the_global_posterior_and_decodes_back() -> None:
    torch.manual_seed(0)
    model = _model().eval()
    _perturb(model)
    x = torch.rand(4, 1, 16, 32) * 2 - 1
    mean, logvar = model.embed(x)
    assert mean.shape == logvar.shape == (4, 5)
    out = model(x)
    torch.testing.assert_close(mean, out.posteriors[0].mean)
    torch.testing.assert_close(logvar, out.posteriors[0].logvar)
    params = model.decode_embedding(mean, (16, 32))
    assert params.shape == (4, 2, 16, 32)
    # the code is what the decoder gets: other codes decode to other images
    torch.testing.assert_close(model.decode_embedding(mean, (16, 32)), params)
    assert not torch.allclose(model.decode_embedding(mean + 1.0, (16, 32)), params)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        model.decode_embedding(torch.zeros(1, 6), (16, 32))


def test_embed_ignores_where_the_cell_sits() -> None:
    """Pooled over space: a cell moved within an otherwise empty patch keeps (nearly) its code."""
    torch.manual_seed(0)
    model = _model().eval()
    _perturb(model)
    cell = torch.rand(1, 1, 8, 8) * 2 - 1
    a, b, other = (torch.full((1, 1, 32, 32), -1.0) for _ in range(3))
    a[..., 4:12, 4:12] = cell
    b[..., 16:24, 12:20] = cell
    other[..., 4:12, 4:12] = torch.rand(1, 1, 8, 8) * 2 - 1
    code_a, code_b, code_other = (model.embed(v)[0] for v in (a, b, other))
    assert (code_a - code_b).norm() < 0.2 * (code_a - code_other).norm()


def test_prior_samples_and_prototype_with_a_global_latent() -> None:
    torch.manual_seed(0)
    model = _model(groups_per_scale=2)
    _perturb(model)
    proto = model.prototype_params((16, 16))
    torch.testing.assert_close(proto, model.sample_params(1, (16, 16), temperature=0.0))
    zs = model.top_down(None, 1, (16, 16), temperature=0.0)[1]
    torch.testing.assert_close(zs[0], torch.zeros(1, 5))  # z = 0 for the global group
    samples = model.sample_params(4, (16, 16))
    assert torch.isfinite(samples).all() and not torch.allclose(samples[:1], proto)
    assert not torch.allclose(samples[0], samples[1])


def test_global_latent_conditions_every_spatial_group_and_the_output() -> None:
    torch.manual_seed(0)
    model = _model()
    _perturb(model)
    fixed = [z.detach() for z in model.top_down(None, 1, (16, 16), temperature=0.0)[1]]
    g = fixed[0].clone().requires_grad_(True)
    params, _, priors, _ = model.top_down(None, 1, (16, 16), latents=[g, *fixed[1:]])
    for prior in priors[1:]:  # every spatial group's prior depends on g
        (grad,) = torch.autograd.grad(prior.mean.sum(), g, retain_graph=True)
        assert grad.abs().sum() > 0
    (grad,) = torch.autograd.grad(params.sum(), g)
    assert grad.abs().sum() > 0


def test_half_resolution_finest_latent_does_less_work() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for finest in ("full", "half"):
        model = _model(finest_latent=finest)
        with FlopCounterMode(display=False) as counter:
            model(torch.rand(1, 1, 32, 32))
        flops[finest] = counter.get_total_flops()
    # every scale moves down by 2 on both axes (1/4 of the work) but the full-resolution head
    assert flops["half"] < 0.6 * flops["full"]
