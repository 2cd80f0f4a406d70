"""``ExportedVAE``: the exported network's outputs are cellvae's own numbers for the tile.

The reconstruction path is checked against ``cellvae reconstruct`` in ``test_bioimageio``
(slow, bioimage.io installed); here the codes: the local summary is a third output exactly
when the model has one, and equals ``VAE.local_summary`` of the quantised input.
"""

from __future__ import annotations

import torch

from cellvae.data.normalize import Quantizer
from cellvae.export.module import ExportedVAE, has_local_summary
from cellvae.models import FlatVAE, HierarchicalVAE, make_likelihood


def _hierarchical() -> HierarchicalVAE:
    torch.manual_seed(0)
    lik = make_likelihood("dlogistic", 1, bits=8)
    return HierarchicalVAE(
        2, 1, lik, widths=(8, 8, 16), latent_channels=(2, 3, 4), global_dim=5
    ).eval()


def _raw() -> torch.Tensor:
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 300.0


def test_a_hierarchical_export_returns_the_local_summary_cellvae_embed_writes():
    vae = _hierarchical()
    assert has_local_summary(vae, (16, 16))
    net = ExportedVAE(vae, [Quantizer(0.0, 300.0, 8)], local=True).eval()
    raw = _raw()
    with torch.no_grad():
        recon, code, local = net(raw)
        x = net.to_input(raw)
        expected = vae.local_summary(x)
    # (2 + 3 + 4 channels of the spatial groups) x (mean, spread); the global code is not in it
    assert local.shape == (2, 2 * (2 + 3 + 4)) == expected.shape
    torch.testing.assert_close(local, expected)
    torch.testing.assert_close(code, vae.embed(x)[0])
    assert recon.shape == raw.shape


def test_a_flat_model_exports_two_outputs():
    lik = make_likelihood("bernoulli", 1)
    vae = FlatVAE(2, 1, lik, patch_size=(16, 16), latent_dim=4).eval()
    assert not has_local_summary(vae, (16, 16))
    net = ExportedVAE(vae, [Quantizer(0.0, 300.0, 8)]).eval()
    with torch.no_grad():
        out = net(_raw())
    assert len(out) == 2 and out[1].shape == (2, 4)
