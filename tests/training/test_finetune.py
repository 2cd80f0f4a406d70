"""Fine-tuning on cell-centred crops: symmetries as augmentation, a lower loss on the crops."""

from __future__ import annotations

import torch

from cellvae.models import build_model
from cellvae.training.finetune import augment, finetune
from cellvae.training.objective import elbo_terms


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    turns = [torch.rot90(x, k, (-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def test_augment_gives_one_of_the_eight_symmetries_of_a_square_image():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(64):
        y = augment(x, gen)
        match = [i for i, d in enumerate(_dihedral(x)) if torch.equal(y, d)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(range(8))


def test_augment_of_a_non_square_stack_only_flips():
    x = torch.arange(2 * 3 * 4.0).reshape(1, 1, 2, 3, 4)
    gen = torch.Generator().manual_seed(1)
    for _ in range(16):
        y = augment(x, gen)
        assert y.shape == x.shape
        flips = [
            x.flip(dims) if dims else x
            for dims in ((), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4))
        ]
        assert any(torch.equal(y, f) for f in flips)


def test_finetune_lowers_the_loss_on_the_crops_and_zero_steps_change_nothing():
    torch.manual_seed(0)
    vae = build_model(
        "hierarchical", ndim=2, patch_size=(16, 16), widths=[4, 8], latent_channels=2,
        global_dim=3, groups_per_scale=[1, 0],
    )  # fmt: skip
    crops = torch.zeros(12, 1, 16, 16) - 1
    crops[:, :, 4:12, 4:12] = torch.linspace(-0.5, 1, 12).reshape(12, 1, 1, 1)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    assert finetune(vae, crops, 0) is vae and not vae.training
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())

    def loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(elbo_terms(vae, crops, 1.0).loss)

    start = loss()
    finetune(vae, crops, 60, seed=0)
    assert not vae.training and loss() < start - 0.5
