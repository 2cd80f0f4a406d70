"""HierarchicalVAE: shapes, KL per group, prior sampling, latent-only information path."""

from __future__ import annotations

import time

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from cellvae.models import HierarchicalVAE, make_likelihood

CASES = [(2, (16, 32)), (3, (8, 16, 8))]


def _model(ndim: int, channels: int = 1, likelihood: str = "dlogistic") -> HierarchicalVAE:
    lik = make_likelihood(likelihood, channels, bits=8)
    return HierarchicalVAE(ndim, channels, lik, widths=(8, 16, 16), latent_channels=(2, 3, 4))


@pytest.mark.parametrize(("ndim", "patch"), CASES)
def test_shapes_and_kl_per_group(ndim: int, patch: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _model(ndim, channels=2)
    x = torch.rand(2, 2, *patch) * 2 - 1
    out = model(x)
    assert model.downsampling == (4,) * ndim and model.patch_shape is None
    assert model.group_names == ["z2", "z1", "z0"]
    assert out.params.shape == (2, 4, *patch)
    for s, kl, q, p, z in zip((2, 1, 0), out.kl, out.posteriors, out.priors, out.z):
        side = tuple(n // 2**s for n in patch)
        assert kl.shape == z.shape == (2, model.latent_channels[s], *side)
        assert (kl >= 0).all()
        torch.testing.assert_close(kl, kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std)))


def test_priors_start_standard_normal_so_top_kl_is_closed_form() -> None:
    torch.manual_seed(0)
    model = _model(2)
    out = model(torch.rand(2, 1, 16, 16) * 2 - 1)
    for p in out.priors:  # zero-initialised prior output: N(0, I) at every scale
        torch.testing.assert_close(p.mean, torch.zeros_like(p.mean))
        torch.testing.assert_close(p.logvar, torch.zeros_like(p.logvar))
    torch.testing.assert_close(out.kl[0], out.posteriors[0].kl_standard_normal())


@pytest.mark.parametrize(("ndim", "patch"), CASES)
def test_prior_sampling_needs_no_input(ndim: int, patch: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _model(ndim)
    # perturb the zero-initialised layers so the prior is not trivially N(0, I)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    samples = model.sample_params(3, patch)
    assert samples.shape == (3, 2, *patch) and torch.isfinite(samples).all()
    proto = model.prototype_params(patch)
    torch.testing.assert_close(proto, model.sample_params(1, patch, temperature=0.0))
    assert not torch.allclose(samples[:1], proto)


def test_embed_and_decode_embedding() -> None:
    torch.manual_seed(0)
    model = _model(2)
    x = torch.rand(2, 1, 16, 32) * 2 - 1
    mean, logvar = model.embed(x)
    assert mean.shape == logvar.shape == (2, 4 * 4 * 8)
    torch.testing.assert_close(mean, model(x).posteriors[0].mean.flatten(1))
    params = model.decode_embedding(mean, (16, 32))
    assert params.shape == (2, 2, 16, 32)


def test_encoder_reaches_decoder_only_through_latents() -> None:
    torch.manual_seed(0)
    model = _model(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    feats = [f.detach().requires_grad_(True) for f in model.encode(x)]
    # sampled latents: the features matter (the test would notice a dead encoder)
    params = model.top_down(feats, 2, (16, 16), use_mean=True)[0]
    grads = torch.autograd.grad(params.sum(), feats)
    assert all(g.abs().sum() > 0 for g in grads)
    # latents fixed (here: the prior means): the output cannot depend on the features
    fixed = [z.detach() for z in model.top_down(None, 2, (16, 16), temperature=0.0)[1]]
    params = model.top_down(feats, 2, (16, 16), latents=fixed)[0]
    grads = torch.autograd.grad(params.sum(), feats, allow_unused=True)
    assert all(g is None or g.abs().max() == 0 for g in grads)
    other = [f.detach() + torch.randn_like(f) for f in feats]
    torch.testing.assert_close(model.top_down(other, 2, (16, 16), latents=fixed)[0], params)


@pytest.mark.slow
def test_tiny_overfit_improves_the_elbo() -> None:
    torch.manual_seed(0)
    model = _model(2)
    # four 16x16 patches of smooth blobs on the 8-bit grid
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    centres = [(-0.4, -0.3), (0.5, 0.2), (0.0, 0.6), (-0.5, 0.5)]
    x = torch.stack([torch.exp(-((yy - a) ** 2 + (xx - b) ** 2) / 0.1) for a, b in centres])
    x = torch.round(x * 255) / 255 * 2 - 1
    x = x[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def negative_elbo() -> torch.Tensor:
        out = model(x)
        nll = -model.likelihood.log_prob(out.params, x).flatten(1).sum(1)
        kl = sum(k.flatten(1).sum(1) for k in out.kl)
        return (nll + kl).mean() / x[0].numel()

    start = time.perf_counter()
    with torch.no_grad():
        before = negative_elbo().item()
    for _ in range(300):
        opt.zero_grad()
        loss = negative_elbo()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = negative_elbo().item()
    assert after < 0.5 * before, (before, after)
    assert time.perf_counter() - start < 60
