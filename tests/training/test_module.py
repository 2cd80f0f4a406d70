"""VAEModule: objective, skipped updates, EMA, config errors, checkpoints and resuming."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from cellvae.errors import CellvaeError, ConfigError
from cellvae.training.checkpoint import load_vae
from cellvae.training.module import VAEModule
from cellvae.training.objective import elbo_terms, importance_log_weights, log_likelihood
from tests.training.conftest import level_images, make_trainer


def test_loss_is_negative_elbo_per_dimension(tiny):
    module = VAEModule(**tiny)
    x = level_images(3)
    torch.manual_seed(0)
    terms = elbo_terms(module.model, x, beta=0.5)
    torch.manual_seed(0)
    out = module.model(x)
    log_px = module.model.likelihood.log_prob(out.params, x).flatten(1).sum(1)
    kl = sum(k.flatten(1).sum(1) for k in out.kl)
    expected = (-log_px + 0.5 * kl).mean() / (16 * 16)
    torch.testing.assert_close(terms.loss, expected)
    stats = terms.per_dim(module.model.likelihood)
    # discrete likelihood: bits/dim is -elbo / ln 2, no offset
    torch.testing.assert_close(stats["bits_per_dim"], -stats["elbo"] / math.log(2.0))


def test_gaussian_bits_per_dim_gets_the_bin_offset(tiny):
    module = VAEModule(**{**tiny, "likelihood": "gaussian", "sigma_mode": "learned"})
    stats = elbo_terms(module.model, level_images(2), beta=1.0).per_dim(module.model.likelihood)
    offset = -math.log(2 / 255)
    expected = (-stats["elbo"] + offset) / math.log(2.0)
    torch.testing.assert_close(stats["bits_per_dim"], expected)


def test_iwae_log_weights_have_one_row_per_sample(tiny):
    module = VAEModule(**tiny)
    log_w = importance_log_weights(module.model, level_images(3), k=5)
    assert log_w.shape == (5, 3)
    assert torch.isfinite(log_w).all()


class _NaNBatch(torch.utils.data.Dataset):
    """Batches of level images; batch 1 is all NaN."""

    def __init__(self) -> None:
        self.x = level_images(16)
        self.x[4:8] = float("nan")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def test_nan_loss_update_is_skipped_and_counted(tmp_path, tiny):
    module = VAEModule(**tiny)
    trainer = make_trainer(tmp_path, max_steps=3)
    trainer.fit(module, DataLoader(_NaNBatch(), batch_size=4))
    assert int(module.skipped_updates) == 1
    assert trainer.global_step == 3  # the NaN batch did not count as an update
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_endless_bad_updates_stop_with_a_clear_error(tmp_path, tiny, loader):
    module = VAEModule(**tiny, skip_loss=0.0, max_consecutive_skips=2)
    with pytest.raises(CellvaeError, match="training diverged"):
        make_trainer(tmp_path, max_steps=5).fit(module, loader)
    assert int(module.skipped_updates) == 3


def test_ema_weights_trail_the_trained_weights(tmp_path, tiny, loader):
    module = VAEModule(**tiny, ema_decay=0.5)
    before = [p.detach().clone() for p in module.model.parameters()]
    make_trainer(tmp_path, max_steps=3).fit(module, loader)
    assert module.eval_model is module.ema.module
    for p0, p, e in zip(before, module.model.parameters(), module.ema.module.parameters()):
        if not torch.equal(p0, p):
            assert not torch.equal(p, e)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"likelihood": "poisson"}, r"model\.likelihood: 'poisson'.*'gaussian'"),
        ({"bits": 17}, r"model\.bits: 17 is out of range; allowed \[1, 16\]"),
        ({"latent_dim": 0, "arch": "flat"}, r"model\.latent_dim"),
        ({"latent_channels": 0}, r"model\.latent_channels"),
        ({"patch_size": 15}, r"model\.patch_size.*divisible by 2"),
        ({"beta_schedule": "sigmoid"}, r"model\.beta_schedule"),
    ],
)
def test_bad_config_names_the_field(tiny, override, field):
    with pytest.raises(ConfigError, match=field):
        VAEModule(**{**tiny, **override})


def test_checkpoint_loads_with_weights_only_and_as_vae(tmp_path, tiny, loader):
    module = VAEModule(**tiny, ema_decay=0.9)
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit(module, loader)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["hyper_parameters"]["arch"] == "hierarchical"
    vae, hparams = load_vae(path)
    assert hparams["widths"] == [4, 8]
    for a, b in zip(vae.state_dict().values(), module.ema.module.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_load_vae_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CellvaeError, match="checkpoint not found"):
        load_vae(tmp_path / "nope.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CellvaeError, match="not a readable checkpoint"):
        load_vae(corrupt)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"net.w": torch.ones(2)}, "hyper_parameters": {"lr": 1.0}}, foreign)
    with pytest.raises(CellvaeError, match="another model type"):
        load_vae(foreign)


class _RecordStart(L.Callback):
    def on_train_start(self, trainer, module) -> None:
        opt = trainer.optimizers[0]
        self.global_step = trainer.global_step
        self.adam_steps = {float(s["step"]) for s in opt.state.values()}
        self.lr = opt.param_groups[0]["lr"]


def test_resume_keeps_global_step_and_optimiser_state(tmp_path, tiny, loader):
    tiny = {**tiny, "lr_warmup_steps": 10}
    first = make_trainer(tmp_path, max_steps=4)
    first.fit(VAEModule(**tiny), loader)
    path = tmp_path / "step4.ckpt"
    first.save_checkpoint(path)
    record = _RecordStart()
    second = make_trainer(tmp_path, max_steps=6, callbacks=[record])
    second.fit(VAEModule(**tiny), loader, ckpt_path=path)
    assert record.global_step == 4
    assert record.adam_steps == {4.0}
    assert record.lr == pytest.approx(1e-3 * 5 / 10)  # warm-up continues at step 4
    assert second.global_step == 6


class _RecordLossDtype(L.Callback):
    """Remember the dtype of the decoder's output and the loss of the first batch."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            with trainer.precision_plugin.forward_context():
                self.features_dtype = module.model.encode(batch)[0].dtype
                self.params_dtype = module.model(batch).params.dtype
            self.loss = outputs["loss"] if isinstance(outputs, dict) else outputs


def test_bf16_mixed_precision_trains_with_a_float32_likelihood(tmp_path, tiny, loader):
    record = _RecordLossDtype()
    module = VAEModule(**tiny)
    trainer = make_trainer(tmp_path, max_steps=2, precision="bf16-mixed", callbacks=[record])
    trainer.fit(module, loader)
    assert record.features_dtype == torch.bfloat16  # the network really ran in bf16
    assert record.params_dtype == torch.float32  # but its likelihood head in float32
    assert torch.isfinite(record.loss)
    assert int(module.skipped_updates) == 0
    assert all(p.dtype == torch.float32 for p in module.model.parameters())


def test_log_likelihood_is_float32_under_bf16_autocast(tiny):
    module = VAEModule(**tiny)
    x = level_images(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        params = module.model(x).params
        log_px = log_likelihood(module.model, params, x)
    assert params.dtype == torch.float32  # the likelihood head runs in float32
    assert log_px.dtype == torch.float32
    expected = module.model.likelihood.log_prob(params.float(), x).flatten(1).sum(1)
    torch.testing.assert_close(log_px, expected)


def test_step_metrics_reach_the_logger_every_log_every_n_steps(tmp_path, tiny, loader):
    import pandas as pd
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="run", version=0)
    trainer = make_trainer(tmp_path, max_steps=6, logger=logger, log_every_n_steps=2)
    trainer.fit(VAEModule(**tiny), loader)
    metrics = pd.read_csv(tmp_path / "run" / "version_0" / "metrics.csv")
    expected = {
        "train/elbo",
        "train/distortion",
        "train/rate",
        "train/bits_per_dim",
        "train/loss",
        "train/beta",
        "train/grad_norm",
        "train/skipped_updates",
        "train/lr",
        "train/kl_nats/z1",  # one KL per latent group of the two-scale model
        "train/kl_nats/z0",
    }
    assert expected <= set(metrics.columns)
    rows = metrics.dropna(subset=["train/elbo"])
    assert rows["step"].tolist() == [1, 3, 5]  # every 2nd update, as Lightning writes them
    assert (rows["train/rate"] >= 0).all() and rows["train/grad_norm"].notna().all()
    # nats per dimension: elbo = -(distortion + rate)
    total = rows["train/distortion"] + rows["train/rate"]
    assert (rows["train/elbo"] + total).abs().max() < 1e-5
