"""The objective against known answers: the IWAE log-weights, free bits and the per-dimension
normalisation (the mutations of issue 11 item 8 each fail one of these)."""

from __future__ import annotations

import torch

from cellvae.models.latents import free_bits
from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms, importance_log_weights, log_likelihood
from tests.training.conftest import level_images


def _shifted_priors(vae) -> None:
    """Move every group's prior away from N(0, I) (the last prior layer starts at zero)."""
    with torch.no_grad():
        for stage in vae.stages:
            stage.prior.c4.bias.normal_(0.0, 0.5)


def test_iwae_log_weights_average_to_the_elbo(tiny):
    """E_q[log w] = E_q[log p(x|z)] - KL(q || p): a sign error in log p - log q, or N(0, I) in
    place of the model's priors, moves the average by about the KL (here ~800 nats)."""
    torch.manual_seed(0)
    vae = VAEModule(**tiny).model
    _shifted_priors(vae)
    x = level_images(4)
    with torch.no_grad():
        log_w = importance_log_weights(vae, x, k=256)
        terms = [elbo_terms(vae, x, 1.0) for _ in range(128)]
    elbo = torch.stack([t.log_px - t.kl for t in terms]).mean()
    kl = torch.stack([t.kl for t in terms]).mean()
    assert kl > 300
    assert abs(float(log_w.mean() - elbo)) < 0.03 * float(kl)


def test_iwae_encodes_once_and_batches_the_samples(tiny, monkeypatch):
    for arch in ("hierarchical", "flat"):
        torch.manual_seed(0)
        vae = VAEModule(**{**tiny, "arch": arch}).model
        name = "encode" if arch == "hierarchical" else "posterior"
        calls: list[int] = []
        original = getattr(vae, name)

        def counted(x, f=original, calls=calls):
            calls.append(len(x))
            return f(x)

        monkeypatch.setattr(vae, name, counted)
        with torch.no_grad():
            log_w = importance_log_weights(vae, level_images(3), k=5)
        assert calls == [3]
        assert log_w.shape == (5, 3) and torch.isfinite(log_w).all()
        assert (log_w.std(0) > 0).all()  # five different draws per image


def test_free_bits_clamp_the_batch_mean_not_each_example():
    kl = torch.tensor([[0.2], [1.4]], requires_grad=True)
    total = free_bits(kl, 0.5)  # batch mean 0.8 > 0.5: not clamped (per example: 0.95)
    assert float(total) == torch.tensor(0.8).item()
    total.backward()
    torch.testing.assert_close(kl.grad, torch.tensor([[0.5], [0.5]]))


def test_free_bits_in_the_loss_use_each_groups_batch_mean(tiny):
    torch.manual_seed(0)
    vae = VAEModule(**tiny).model
    with torch.no_grad():
        for stage in vae.stages:  # posteriors that depend strongly on the image
            stage.posterior.c4.weight.mul_(10.0)
    x = level_images(4)
    x[:2] = -1.0  # blank images: their KL differs from the noisy ones'
    torch.manual_seed(1)
    plain = elbo_terms(vae, x, beta=1.0)
    low = min(plain.kl_groups, key=lambda k: float(k.mean()))
    lam = 0.5 * float(low.min() + low.mean())  # below every group's batch mean ...
    assert float(low.mean() - low.min()) > 0.1  # ... and above some example's KL
    torch.manual_seed(1)
    free = elbo_terms(vae, x, beta=1.0, free_nats=lam)
    torch.testing.assert_close(free.loss, plain.loss)  # no group is below lambda on average


def test_loss_and_bits_per_dim_divide_by_channels_times_pixels(tiny):
    torch.manual_seed(0)
    vae = VAEModule(**{**tiny, "in_channels": 2}).model
    x = torch.cat([level_images(3, seed=1), level_images(3, seed=2)], dim=1)  # (3, 2, 16, 16)
    torch.manual_seed(1)
    terms = elbo_terms(vae, x, beta=1.0)
    torch.manual_seed(1)
    out = vae(x)
    log_px = log_likelihood(vae, out.params, x)
    kl = sum(k.flatten(1).sum(1) for k in out.kl)
    assert terms.dims == 2 * 16 * 16
    torch.testing.assert_close(terms.loss, (-log_px + kl).mean() / (2 * 16 * 16))
    # a random-level image of 2**8 levels costs about 8 bits per dimension, not 16
    bpd = float(terms.per_dim(vae.likelihood)["bits_per_dim"])
    assert 7.5 < bpd < 10.0
