"""Per-axis downsampling: the automatic choice from voxel sizes, and anisotropic models."""

from __future__ import annotations

import math

import pytest
import torch

from cellvae.errors import ConfigError
from cellvae.models import build_model
from cellvae.models.geometry import auto_factors, resolve_factors, total_factor


@pytest.mark.parametrize(
    ("voxel", "levels", "expected"),
    [
        (None, 2, ((2, 2, 2), (2, 2, 2))),
        ((0.5, 0.1, 0.1), 4, ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))),
        ((0.2, 0.1, 0.1), 2, ((1, 2, 2), (2, 2, 2))),
        ((0.13, 0.1, 0.1), 1, ((2, 2, 2),)),  # within sqrt(2): near isotropic already
        ((1.0, 0.3, 0.3), 3, ((1, 2, 2), (1, 2, 2), (2, 2, 2))),
        ((0.1, 0.1), 2, ((2, 2), (2, 2))),
        ((0.2, 0.1), 2, ((1, 2), (2, 2))),
    ],
)
def test_auto_factors_halve_xy_until_near_isotropic(voxel, levels, expected) -> None:
    ndim = 3 if voxel is None else len(voxel)
    assert auto_factors(voxel, ndim, levels) == expected


def test_explicit_factors_and_bad_values() -> None:
    assert resolve_factors([2, [1, 2, 2]], 3, 2) == ((2, 2, 2), (1, 2, 2))
    assert total_factor(((1, 2, 2), (2, 2, 2), (1, 2, 1)), 3) == (2, 8, 4)
    with pytest.raises(ConfigError, match=r"downsample: .* one factor per level \(3\)"):
        resolve_factors([2, 2], 3, 3)
    with pytest.raises(ConfigError, match=r"downsample: .* 3 ints >= 1"):
        resolve_factors([[1, 2]], 3, 1)
    with pytest.raises(ConfigError, match="voxel_size"):
        auto_factors((0.0, 1.0), 2, 2)


def test_anisotropic_hierarchical_model_keeps_z_at_the_first_levels() -> None:
    torch.manual_seed(0)
    patch = (4, 32, 32)
    model = build_model(
        "hierarchical", 3, 1, "dlogistic", 8, patch, widths=[4, 4, 8, 8], latent_channels=2,
        global_dim=3, voxel_size=[0.5, 0.1, 0.1], global_top=False,
    )  # fmt: skip
    assert model.factors == ((1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert model.downsampling == (2, 8, 8)
    feats = model.encode(torch.zeros(1, 1, *patch))
    assert [tuple(f.shape[2:]) for f in feats] == [(4, 32, 32), (4, 16, 16), (4, 8, 8), (2, 4, 4)]
    out = model(torch.rand(2, 1, *patch) * 2 - 1)
    assert out.params.shape == (2, 2, *patch)
    assert [tuple(z.shape[2:]) for z in out.z[1:]] == [(2, 4, 4), (4, 8, 8), (4, 16, 16), patch]
    assert model.sample_params(2, patch).shape == (2, 2, *patch)
    with pytest.raises(ConfigError, match=r"divisible by \[2, 8, 8\]"):
        model.sample_params(1, (4, 32, 36))


def test_anisotropic_flat_model() -> None:
    torch.manual_seed(0)
    patch = (8, 32, 32)
    model = build_model(
        "flat", 3, 1, "dlogistic", 8, patch, widths=[4, 8, 8], latent_dim=3,
        voxel_size=[0.5, 0.1, 0.1],
    )  # fmt: skip
    assert model.factors == ((1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert model.downsampling == (2, 8, 8)
    h = model.encoder(torch.zeros(1, 1, *patch))
    assert tuple(h.shape[2:]) == (4, 4, 4)
    x = torch.rand(2, 1, *patch) * 2 - 1
    assert model(x).params.shape == (2, 2, *patch)
    assert model.embed(x)[0].shape == (2, 3)
    assert model.sample_params(2, patch).shape == (2, 2, *patch)


def test_isotropic_default_matches_the_classic_layout() -> None:
    model = build_model("hierarchical", 3, 1, "dlogistic", 8, (8, 8, 8), widths=[4, 4, 4])
    assert model.factors == ((2, 2, 2), (2, 2, 2)) and model.downsampling == (4, 4, 4)
    assert math.prod(model.downsampling) == 64
