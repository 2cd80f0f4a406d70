"""FlatVAE: shapes in 2D and 3D, KL, embeddings, prior sampling."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from cellvae.errors import ConfigError
from cellvae.models import FlatVAE, make_likelihood

CASES = [(2, (16, 32)), (3, (8, 8, 16))]


def _model(ndim: int, patch: tuple[int, ...], channels: int = 2) -> FlatVAE:
    lik = make_likelihood("dmol", channels, bits=8, n_mixtures=2)
    return FlatVAE(ndim, channels, lik, patch, latent_dim=6, widths=(8, 16))


@pytest.mark.parametrize(("ndim", "patch"), CASES)
def test_shapes_and_kl(ndim: int, patch: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _model(ndim, patch)
    x = torch.rand(3, 2, *patch) * 2 - 1
    out = model(x)
    assert out.params.shape == (3, 2 * 6, *patch)
    assert model.downsampling == (4,) * ndim and model.patch_shape == patch
    assert model.group_names == ["z"] and len(out.kl) == 1
    (kl,), (q,) = out.kl, out.posteriors
    assert kl.shape == (3, 6) and out.z[0].shape == (3, 6)
    assert (kl >= 0).all()
    expected = kl_divergence(Normal(q.mean, q.std), Normal(0.0, 1.0))
    torch.testing.assert_close(kl, expected)
    torch.testing.assert_close(out.priors[0].mean, torch.zeros(3, 6))
    assert model.likelihood.log_prob(out.params, x).shape == x.shape


@pytest.mark.parametrize(("ndim", "patch"), CASES)
def test_embedding_round_trip_and_prior_sampling(ndim: int, patch: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _model(ndim, patch).eval()
    x = torch.rand(2, 2, *patch) * 2 - 1
    mean, logvar = model.embed(x)
    assert mean.shape == logvar.shape == (2, 6)
    torch.testing.assert_close(model.decode_embedding(mean, patch), model.reconstruct_params(x))
    samples = model.sample_params(5, patch)
    assert samples.shape == (5, 12, *patch) and torch.isfinite(samples).all()
    zero = model.decode(torch.zeros(1, 6))
    torch.testing.assert_close(model.prototype_params(patch), zero)
    assert not torch.equal(model.sample_params(1, patch), zero)


def test_wrong_patch_shape_is_a_config_error() -> None:
    model = _model(2, (16, 16))
    with pytest.raises(ConfigError, match="patch_size"):
        model.sample_params(1, (16, 32))
    with pytest.raises(ConfigError, match="patch_size must be divisible by 4"):
        _model(2, (16, 18))
