"""build_model: validation messages and the two architectures."""

from __future__ import annotations

import pytest
import torch

from cellvae.errors import ConfigError
from cellvae.models import FlatVAE, HierarchicalVAE, build_model

SMALL = {"widths": [8, 16], "latent_dim": 4, "latent_channels": 2}


@pytest.mark.parametrize(("arch", "cls"), [("flat", FlatVAE), ("hierarchical", HierarchicalVAE)])
def test_builds_each_architecture(arch: str, cls: type) -> None:
    model = build_model(arch, 3, 1, "gaussian", 12, [8, 8, 8], sigma_mode="pixel", **SMALL)
    assert isinstance(model, cls) and model.ndim == 3
    assert model.likelihood.bits == 12 and model.likelihood.out_channels == 2
    out = model(torch.zeros(1, 1, 8, 8, 8))
    assert out.params.shape == (1, 2, 8, 8, 8)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arch": "unet"}, r"arch: 'unet' is not allowed; choose one of 'flat', 'hierarchical'"),
        ({"likelihood": "poisson"}, r"likelihood: 'poisson' is not allowed.*'dmol'"),
        ({"bits": 0}, r"bits: 0 is out of range; allowed \[1, 16\]"),
        ({"bits": 17}, r"bits: 17 is out of range"),
        ({"patch_size": [16, 18]}, r"patch_size must be divisible by 4"),
        ({"arch": "hierarchical", "patch_size": [16, 17]}, r"patch_size must be divisible by 2"),
        ({"latent_dim": 0}, r"latent_dim: 0 is out of range"),
        ({"arch": "hierarchical", "latent_channels": 0}, r"latent_channels: 0 is out of range"),
        ({"ndim": 4}, r"ndim: 4 is not allowed"),
        ({"sigma_mode": "global"}, r"sigma_mode: 'global' is not allowed"),
    ],
)
def test_bad_options_name_the_field(overrides: dict, message: str) -> None:
    kwargs = {"arch": "flat", "ndim": 2, "in_channels": 1, "likelihood": "gaussian", "bits": 8}
    kwargs |= {"patch_size": [16, 16], **SMALL, **overrides}
    with pytest.raises(ConfigError, match=message):
        build_model(**kwargs)
