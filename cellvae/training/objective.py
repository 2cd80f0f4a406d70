"""The ELBO and the importance-weighted log-weights of one batch, from a VAE's forward pass.

Kept apart from the LightningModule so the bare-PyTorch benchmark and the tests compute the
exact same loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cellvae.metrics.likelihood import bits_per_dim, dequantize


@dataclass
class ElboTerms:
    """One batch's ELBO terms.

    Attributes
    ----------
    loss : Tensor
        Scalar to minimise: ``-(E_q[log p(x|z)] - β·KL)`` per image (KL after free bits),
        divided by the dimensions per image ``D = C·prod(patch)``.
    log_px : Tensor
        ``(B,)`` single-sample ``log p(x|z)`` per image, nats.
    kl_groups : list of Tensor
        ``(B,)`` KL per image of each latent group, nats (without free bits).
    dims : int
        ``D``, the dimensions per image.
    output : object
        The model's ``VAEOutput``.
    """

    loss: Tensor
    log_px: Tensor
    kl_groups: list[Tensor]
    dims: int
    output: object

    @property
    def kl(self) -> Tensor:
        """``(B,)`` total KL per image, nats."""
        return torch.stack(self.kl_groups).sum(0)

    def per_dim(self, likelihood: nn.Module) -> dict[str, Tensor]:
        """Batch means in nats per dimension: ``elbo``, ``distortion``, ``rate``; plus
        ``bits_per_dim`` of ``-elbo`` (continuous likelihoods get the bin-width offset)."""
        distortion = -self.log_px.mean() / self.dims
        rate = self.kl.mean() / self.dims
        bpd = bits_per_dim(distortion + rate, bool(likelihood.discrete), likelihood.bin_width)
        return {
            "elbo": -(distortion + rate),
            "distortion": distortion,
            "rate": rate,
            "bits_per_dim": bpd,
        }


def log_likelihood(vae: nn.Module, params: Tensor, x: Tensor) -> Tensor:
    """``log p(x|z)`` summed per image, ``(B,)`` nats, computed in float32 even under autocast.

    A continuous likelihood (a density) is scored on uniformly dequantized data, ``x`` plus
    noise of one bin width (:func:`~cellvae.metrics.likelihood.dequantize`), so that its
    bits/dim (with the bin-width offset) is an upper bound on the discrete data's, in
    expectation, and comparable with a discretized likelihood's.
    """
    likelihood = vae.likelihood
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        if not likelihood.discrete:
            x = dequantize(x, likelihood.bin_width)
        return likelihood.log_prob(params.float(), x).flatten(1).sum(1)


def elbo_terms(vae: nn.Module, x: Tensor, beta: float, free_nats: float = 0.0) -> ElboTerms:
    """Forward ``x`` ``(B, C, *S)`` through ``vae`` and form the β-weighted negative ELBO.

    ``free_nats`` > 0 applies free bits (Kingma et al. 2016) per latent group: each group's
    batch-mean KL per image counts at least ``free_nats`` nats in the loss.
    """
    from cellvae.models.latents import free_bits

    out = vae(x)
    log_px = log_likelihood(vae, out.params, x)
    kl_groups = [k.float().flatten(1).sum(1) for k in out.kl]
    if free_nats > 0:
        kl_loss = torch.stack([free_bits(k, free_nats) for k in kl_groups]).sum()
    else:
        kl_loss = torch.stack(kl_groups).sum(0).mean()
    dims = math.prod(x.shape[1:])
    loss = (-log_px.mean() + beta * kl_loss) / dims
    return ElboTerms(loss, log_px, kl_groups, dims, out)


def importance_log_weights(vae: nn.Module, x: Tensor, k: int) -> Tensor | None:
    """``log p(x|z_k) + log p(z_k) - log q(z_k|x)`` for ``k`` posterior draws, ``(k, B)`` nats.

    The encoder runs once: a hierarchical model (``encode`` + ``top_down``) runs its top-down
    pass on the features repeated ``k`` times, one batch of ``k·B``; a flat model
    (``posterior`` + ``decode``) draws ``k`` latents from one posterior and decodes them in one
    batch. Each group's prior is the model's own ``p(z_l | z_>l)`` (``N(0, I)`` for the flat
    model). Any other model is run ``k`` times; it returns ``None`` if its output has several
    groups but no priors (the bound cannot be formed).
    """
    from cellvae.models.latents import DiagonalGaussian

    b, spatial = x.shape[0], tuple(x.shape[2:])
    x_k = x.repeat(k, *([1] * (x.ndim - 1)))
    if hasattr(vae, "encode") and hasattr(vae, "top_down"):
        feats = [f.repeat(k, *([1] * (f.ndim - 1))) for f in vae.encode(x)]
        params, zs, priors, posts = vae.top_down(feats, k * b, spatial)
        return _log_weights(vae, params, x_k, zs, priors, posts).reshape(k, b)
    if hasattr(vae, "posterior") and hasattr(vae, "decode"):
        q = vae.posterior(x)
        q = DiagonalGaussian(q.mean.repeat(k, 1), q.logvar.repeat(k, 1))
        z = q.rsample()
        prior = DiagonalGaussian.standard_like(z)
        return _log_weights(vae, vae.decode(z), x_k, [z], [prior], [q]).reshape(k, b)
    rows = []
    for _ in range(k):
        out = vae(x)
        priors = getattr(out, "priors", None)
        if not priors:
            if len(out.z) != 1:
                return None
            priors = [DiagonalGaussian.standard_like(out.z[0].float())]
        rows.append(_log_weights(vae, out.params, x, out.z, priors, out.posteriors))
    return torch.stack(rows)


def _log_weights(vae: nn.Module, params: Tensor, x: Tensor, zs, priors, posteriors) -> Tensor:
    """``log p(x|z) + Σ_l [log p(z_l | z_>l) - log q(z_l | x, z_>l)]`` per image, ``(B,)``."""
    log_w = log_likelihood(vae, params, x)
    for post, prior, z in zip(posteriors, priors, zs):
        log_q = post.log_prob(z).flatten(1).sum(1)
        log_p = prior.log_prob(z).flatten(1).sum(1)
        log_w = log_w + log_p - log_q
    return log_w
