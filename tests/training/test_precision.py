"""Mixed precision: fp16 with a GradScaler (emulated on CPU) trains; bf16 matches fp32."""

from __future__ import annotations

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from cellvae.training.module import VAEModule
from tests.training.conftest import make_trainer


def test_fp16_with_a_grad_scaler_trains_and_clips_unscaled_gradients(tmp_path, tiny, loader):
    """Lightning's 16-mixed plugin with a GradScaler, on CPU: the gradient norm is taken after
    unscaling (else it is ~65536x too large and every update is skipped), and a skipped
    update still lets the scaler back off."""
    torch.manual_seed(0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    module = VAEModule(**tiny, grad_clip=1.0, skip_grad_norm=1e3)
    before = [p.detach().clone() for p in module.model.parameters()]
    trainer = make_trainer(tmp_path, max_steps=6, plugins=[plugin])
    trainer.fit(module, loader)
    assert trainer.global_step == 6
    assert int(module.skipped_updates) < 8  # of at most 8 batches, most were applied
    assert any(not torch.equal(a, b) for a, b in zip(before, module.model.parameters()))
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_fp16_overflowing_scale_backs_off_then_trains(tmp_path, tiny, loader):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # fp16 gradients overflow
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    module = VAEModule(**tiny)
    trainer = make_trainer(tmp_path, max_steps=4, plugins=[plugin])
    trainer.fit(module, loader)
    assert trainer.global_step == 4
    assert 1 <= int(module.skipped_updates) <= 40
    assert scaler.get_scale() < 2.0**40
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_bf16_bits_per_dim_match_float32_on_a_sharp_near_collapsed_model():
    """Near-collapsed latents (posterior ~ prior) and a decoder sharp to one bin: the KL must
    not cancel to noise in bf16 and the likelihood's parameters must come out in float32."""
    import math

    from cellvae.models.likelihoods import quantize
    from cellvae.training.objective import elbo_terms
    from tests.training.conftest import TINY, level_images

    torch.manual_seed(0)
    vae = VAEModule(**{**TINY, "widths": [8, 16], "latent_channels": 16}).model
    with torch.no_grad():
        for stage in vae.stages:
            stage.posterior.c4.weight.mul_(0.05)
            stage.posterior.c4.bias.mul_(0.05)
        vae.to_params.bias[1] = math.log(2 / 255)  # logistic scale of one bin
        torch.manual_seed(1)
        x = quantize(vae.likelihood.mean(vae(level_images(16)).params), 8)  # data it predicts
        torch.manual_seed(1)
        fp32 = elbo_terms(vae, x, 1.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.manual_seed(1)
            bf16 = elbo_terms(vae, x, 1.0)
    assert bf16.output.params.dtype == torch.float32
    assert all(k.dtype == torch.float32 for k in bf16.output.kl)
    a, b = fp32.per_dim(vae.likelihood), bf16.per_dim(vae.likelihood)
    assert abs(float(a["rate"] - b["rate"])) < 1e-4  # nats/dim; bf16 KL was off by 9e-3
    assert abs(float(a["bits_per_dim"] - b["bits_per_dim"])) < 0.01
