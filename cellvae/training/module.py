"""``VAEModule``: the Lightning training plan of every cellvae VAE.

The network is pure torch (:mod:`cellvae.models`); this module owns the objective, the β
schedule, free bits, numerical safety (skipping bad updates), the optimiser with learning-rate
warm-up, an optional EMA of the weights and the validation metrics (bits/dim, IWAE bound,
active units, an image grid). Its constructor takes primitive, typed values only, so the
hyper-parameters saved in a checkpoint load with ``torch.load(weights_only=True)`` and the
constructor signature is the ``model:`` section of a LightningCLI config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cellvae.errors import CellvaeError, ConfigError, check_choice, check_range
from cellvae.metrics.information import INFORMATIVE_NATS, information_from_moments
from cellvae.metrics.likelihood import (
    activity_from_moments,
    bits_per_dim,
    iwae_bound,
    unit_moments,
)
from cellvae.models.factory import ARCHS
from cellvae.models.likelihoods import LIKELIHOODS
from cellvae.training.collapse import collapse_advice
from cellvae.training.images import image_grid, log_image_grid
from cellvae.training.objective import elbo_terms, importance_log_weights
from cellvae.training.schedules import (
    beta_at,
    lr_factor,
    validate_beta_schedule,
    validate_lr_schedule,
)

#: hyper-parameters handed to :func:`cellvae.models.build_model`.
MODEL_KEYS = (
    "arch",
    "ndim",
    "in_channels",
    "likelihood",
    "bits",
    "patch_size",
    "latent_dim",
    "widths",
    "latent_channels",
    "blocks_per_scale",
    "n_mixtures",
    "sigma_mode",
    "sigma",
)

#: model hyper-parameters added later, with the value that rebuilds a checkpoint saved before
#: they existed (the old architecture); the presets opt in to the new ones.
LATER_MODEL_KEYS = {
    "groups_per_scale": 1,
    "global_dim": 0,
    "downsample": "auto",
    "voxel_size": None,
    "finest_latent": "full",
    "min_log_scale": -7.0,
    "head_upsample": "nearest",
    "head_width": None,
    "global_decoder": "bias",
    "global_norm": "none",
    "global_logvar_floor": None,
    "global_top": False,
}


def patch_shape(patch_size: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """A side length or per-axis sides -> a tuple of ``ndim`` sides (Z, Y, X order)."""
    if isinstance(patch_size, int):
        return (int(patch_size),) * ndim
    shape = tuple(int(s) for s in patch_size)
    if len(shape) != ndim:
        raise ConfigError(f"model.patch_size: {list(shape)} must have ndim={ndim} sides")
    return shape


def validate_model_config(hparams: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first bad ``model.*`` field, before any building."""
    check_choice("model.arch", hparams["arch"], ARCHS)
    check_choice("model.ndim", hparams["ndim"], (2, 3))
    check_choice("model.likelihood", hparams["likelihood"], LIKELIHOODS)
    check_range("model.bits", hparams["bits"], 1, 16)
    check_range("model.in_channels", hparams["in_channels"], 1)
    check_range("model.latent_dim", hparams["latent_dim"], 1)
    channels = hparams["latent_channels"]
    for c in [channels] if isinstance(channels, int) else channels:
        check_range("model.latent_channels", c, 1)
    if not hparams["widths"] or min(hparams["widths"]) < 1:
        raise ConfigError(f"model.widths: {list(hparams['widths'])} must be positive channels")
    shape = patch_shape(hparams["patch_size"], hparams["ndim"])
    if min(shape) < 1:
        raise ConfigError(f"model.patch_size: {list(shape)} must be positive")
    groups = hparams.get("groups_per_scale", 1)
    for g in [groups] if isinstance(groups, int) else groups:
        check_range("model.groups_per_scale", g, 0)
    check_range("model.global_dim", hparams.get("global_dim", 0), 0)
    check_choice("model.finest_latent", hparams.get("finest_latent", "full"), ("full", "half"))
    check_choice(
        "model.head_upsample", hparams.get("head_upsample", "nearest"), ("nearest", "shuffle")
    )
    if hparams.get("head_width") is not None:
        check_range("model.head_width", hparams["head_width"], 1)
    check_choice("model.global_decoder", hparams.get("global_decoder", "map"), ("map", "bias"))
    check_choice("model.global_norm", hparams.get("global_norm", "none"), ("none", "batch"))


def build_vae(hparams: Mapping[str, Any]) -> nn.Module:
    """Build the network described by ``hparams`` (a checkpoint's or the constructor's)."""
    from cellvae.models import build_model

    validate_model_config(hparams)
    kwargs = {key: hparams[key] for key in MODEL_KEYS}
    kwargs |= {key: hparams.get(key, default) for key, default in LATER_MODEL_KEYS.items()}
    kwargs["patch_size"] = patch_shape(hparams["patch_size"], hparams["ndim"])
    try:
        vae = build_model(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"model.{err}") from None
    ds = vae.downsampling
    ds = (ds,) * len(kwargs["patch_size"]) if isinstance(ds, int) else tuple(ds)
    if any(side % d for side, d in zip(kwargs["patch_size"], ds)):
        shown = ds[0] if len(set(ds)) == 1 else list(ds)
        raise ConfigError(
            f"model.patch_size: {list(kwargs['patch_size'])} is not divisible by the total "
            f"downsampling {shown} of the model; allowed: multiples of {shown}"
        )
    return vae


def _channels_last(ndim: int) -> torch.memory_format:
    return torch.channels_last if ndim == 2 else torch.channels_last_3d


def _images(batch: Any) -> Tensor:
    """The image tensor ``(B, C, *S)`` of a batch (a tensor, a tuple or a dict with 'image')."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, Mapping):
        return batch["image"]
    return batch[0]


def _real(batch: Any, x: Tensor) -> Tensor:
    """Which images of a batch are real, ``(B,)`` bool: a dict batch's ``weight > 0`` marks
    them (validation pads ranks to equal batch counts with weight-0 tiles); else all are."""
    if isinstance(batch, Mapping) and "weight" in batch:
        return torch.as_tensor(batch["weight"], device=x.device) > 0
    return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)


class VAEModule(L.LightningModule):
    """Train a cellvae VAE by maximising the (β-weighted) ELBO.

    Parameters
    ----------
    arch : {"flat", "hierarchical"}
        One latent, or a stack of latents from coarse to fine scales.
    ndim : {2, 3}
        Image dimensionality; batches are ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    in_channels : int
        Image channels ``C`` (linked from the data in the CLI).
    patch_size : int or list of int
        Patch side(s) in pixels; each must be divisible by the model's total downsampling.
    likelihood : {"gaussian", "bernoulli", "dlogistic", "dmol"}
        Decoder distribution ``p(x|z)``.
    bits : int
        Bit depth of the data, 1–16 (linked from the data in the CLI).
    latent_dim, widths, latent_channels, blocks_per_scale
        Network size: vector latent size (flat), channels per scale, latent channels per
        scale (hierarchical), residual blocks per scale; see :func:`cellvae.models.build_model`.
    groups_per_scale, global_dim, finest_latent
        Hierarchical model: latent groups per scale, size of the global vector latent (0 =
        none; ``cellvae embed`` then gives the top spatial group) and resolution of the finest
        latent group (``full`` or ``half``).
    head_upsample, head_width
        With ``finest_latent: half``, how the output head returns to full resolution
        (``nearest`` upsampling then a 3×3 convolution, or a sub-pixel ``shuffle`` convolution
        that does its 3×3 work at half resolution) and its channels (``None`` = ``widths[0]``).
        Most of a small model's training work is this head: ``shuffle`` at half the width
        costs a third (``benchmarks/bench_train.py``).
    global_decoder, global_norm, global_logvar_floor, global_top
        How the global latent (the cell embedding) reaches the decoder: ``map`` (it generates
        the top state and modulates every group) or ``bias`` (the first design, what a
        checkpoint without these options gets); ``batch`` normalises its posterior mean over
        the batch (BN-VAE); a soft floor on its posterior log-variance; ``global_top``: no
        spatial group at the top scale (with one ``groups_per_scale`` value), so the global
        latent alone shapes it. See :mod:`cellvae.models.global_latent`.
    downsample, voxel_size
        Per-level, per-axis downsampling factors, or ``"auto"``: Y/X only until the voxels
        are near isotropic, from ``voxel_size`` (linked from the data in the CLI; ``None`` =
        isotropic). The resolved factors are what the checkpoint stores.
    n_mixtures : int
        Mixture components of ``dmol``.
    sigma_mode, sigma : str, float
        Gaussian σ: ``fixed`` (at ``sigma``), ``learned`` (one global σ) or ``pixel``.
    min_log_scale : float or None
        Soft floor of predicted log-scales (``dlogistic``, ``dmol``, Gaussian ``pixel``), in
        model units; ``None`` ties it to ``bits``: a tenth of the bin width ``2 / (2**bits - 1)``.
    beta, beta_schedule, beta_warmup_steps, beta_cycle_steps, beta_cycle_ratio
        KL weight and its schedule (``constant``, ``linear`` warm-up or ``cyclical``).
    free_bits : float
        Free nats per latent group and image (0 = off).
    lr, weight_decay, lr_warmup_steps
        AdamW learning rate, decoupled weight decay and linear warm-up length (steps).
    lr_schedule, lr_decay_steps, lr_decay_factor
        Learning rate after the warm-up: ``constant`` (default), ``cosine`` (down to
        ``lr_decay_factor`` times ``lr`` over ``lr_decay_steps``) or ``step`` (times
        ``lr_decay_factor`` every ``lr_decay_steps``); see :func:`~.schedules.lr_factor`.
    channels_last : bool
        Channels-last memory format for the network and its inputs (faster convolutions on
        tensor-core GPUs; the same numbers). Off by default.
    compile : bool
        Train through ``torch.compile(model)`` (first steps compile; needs a C++ compiler on
        CPU). Validation and checkpoints use the plain module. Off by default.
    grad_clip : float
        Clip the gradient norm to this value (0 = no clipping).
    skip_grad_norm, skip_loss : float or None
        Skip an update whose gradient norm (before clipping) or loss (nats/dim) exceeds this;
        non-finite values are always skipped.
    max_consecutive_skips : int
        Stop with an error after this many skipped updates in a row (training diverged).
    ema_decay : float or None
        Keep an exponential moving average of the weights with this decay (e.g. 0.999); the
        EMA weights are validated and saved. ``None`` = off.
    iwae_samples : int
        Importance samples ``k`` of the IWAE bound (0 = off); costs ``k`` extra passes.
    iwae_batches : int or None
        Validation batches that get the IWAE bound (``None`` = all, so that it and the ELBO
        are scored on the same patches).
    active_threshold : float
        A latent unit is active if the variance of its posterior mean over the validation set
        exceeds this. A unit is one entry of a vector latent or one channel of a spatial
        latent, pooled over positions (:func:`cellvae.metrics.likelihood.unit_moments`).
        Validation warns when no unit of any group is active (posterior collapse).
    grid_images : int
        Images per row in the validation image grid (0 = no grid).
    """

    def __init__(
        self,
        arch: str = "hierarchical",
        ndim: int = 2,
        in_channels: int = 1,
        patch_size: int | Sequence[int] = 64,
        likelihood: str = "dlogistic",
        bits: int = 8,
        latent_dim: int = 32,
        widths: Sequence[int] = (16, 32, 64),
        latent_channels: int | Sequence[int] = 8,
        blocks_per_scale: int = 1,
        n_mixtures: int = 5,
        sigma_mode: str = "learned",
        sigma: float = 0.1,
        min_log_scale: float | None = None,
        beta: float = 1.0,
        beta_schedule: str = "constant",
        beta_warmup_steps: int = 0,
        beta_cycle_steps: int = 1000,
        beta_cycle_ratio: float = 0.5,
        free_bits: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_warmup_steps: int = 50,
        lr_schedule: str = "constant",
        lr_decay_steps: int = 10000,
        lr_decay_factor: float = 0.1,
        channels_last: bool = False,
        compile: bool = False,
        grad_clip: float = 200.0,
        skip_grad_norm: float | None = 1e4,
        skip_loss: float | None = None,
        max_consecutive_skips: int = 100,
        ema_decay: float | None = None,
        iwae_samples: int = 8,
        iwae_batches: int | None = None,
        active_threshold: float = 0.01,
        grid_images: int = 8,
        groups_per_scale: int | Sequence[int] = 1,
        global_dim: int = 0,
        downsample: str | list[int | list[int]] = "auto",
        voxel_size: list[float] | None = None,
        finest_latent: str = "full",
        head_upsample: str = "nearest",
        head_width: int | None = None,
        global_decoder: str = "map",
        global_norm: str = "none",
        global_logvar_floor: float | None = None,
        global_top: bool = True,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not isinstance(latent_channels, int):
            latent_channels = [int(c) for c in latent_channels]
        patch_size = patch_size if isinstance(patch_size, int) else [int(s) for s in patch_size]
        self.save_hyperparameters()
        validate_beta_schedule(
            beta_schedule, beta, beta_warmup_steps, beta_cycle_steps, beta_cycle_ratio
        )
        validate_lr_schedule(lr_schedule, lr_decay_steps, lr_decay_factor)
        check_range("model.free_bits", free_bits, 0.0)
        check_range("model.lr", lr, 0.0)
        check_range("model.iwae_samples", iwae_samples, 0)
        if ema_decay is not None:
            check_range("model.ema_decay", ema_decay, 0.0, 1.0)
        self.automatic_optimization = False
        self.model = build_vae(self.hparams)
        self.hparams.downsample = [list(level) for level in self.model.factors]
        if channels_last:
            self.model.to(memory_format=_channels_last(ndim))
        # kept out of the module tree, so the checkpoint holds the weights once
        self._train_forward: list[nn.Module] = [
            torch.compile(self.model) if compile else self.model
        ]
        self.patch_shape = patch_shape(patch_size, ndim)
        self.ema: AveragedModel | None = None
        if ema_decay is not None:
            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
            )
            self.ema.requires_grad_(False)
        self.register_buffer("skipped_updates", torch.zeros((), dtype=torch.long))
        self._consecutive_skips = 0

    @property
    def eval_model(self) -> nn.Module:
        """The network used for validation: the EMA weights when enabled."""
        return self.model if self.ema is None else self.ema.module

    def forward(self, x: Tensor):
        """The model's ``VAEOutput`` for ``x`` ``(B, C, *S)``."""
        return self.model(x)

    def beta_now(self) -> float:
        """β at the current optimiser step."""
        hp = self.hparams
        return beta_at(
            self.global_step,
            hp.beta_schedule,
            hp.beta,
            hp.beta_warmup_steps,
            hp.beta_cycle_steps,
            hp.beta_cycle_ratio,
        )

    def configure_optimizers(self):
        """AdamW with learning-rate warm-up and decay, stepped once per applied update."""
        hp = self.hparams
        opt = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        args = (int(hp.lr_warmup_steps), hp.lr_schedule, hp.lr_decay_steps, hp.lr_decay_factor)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, *args))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One update; skipped (and counted) if the loss or gradient norm is bad.

        Under fp16 mixed precision the gradients are scaled by the GradScaler's factor ``S``;
        the norm is measured and clipped on the scaled gradients against ``S`` times the limits
        (the same test as on unscaled gradients, without unscaling twice: Lightning unscales in
        ``opt.step()``). A skipped update still reports its overflow to the scaler, which then
        lowers ``S``: an fp16 run starts with a few skipped updates, then trains.
        """
        hp = self.hparams
        opt = self.optimizers()
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        x = self._input(_images(batch))
        beta = self.beta_now()
        terms = elbo_terms(self._train_forward[0], x, beta, hp.free_bits)
        opt.zero_grad(set_to_none=True)
        # backward on every rank, even for a bad loss: DDP needs all ranks in the all-reduce
        self.manual_backward(terms.loss)
        scale = float(scaler.get_scale()) if scaler is not None else 1.0
        max_norm = hp.grad_clip * scale if hp.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm) / scale
        loss = terms.loss.detach()
        checks = [~torch.isfinite(loss), ~torch.isfinite(grad_norm)]
        if hp.skip_loss is not None:
            checks.append(loss > hp.skip_loss)
        if hp.skip_grad_norm is not None:
            checks.append(grad_norm > hp.skip_grad_norm)
        flag = torch.stack(checks).any().float()
        # one host sync per step: the decision, agreed by all ranks
        bad = bool(self.trainer.strategy.reduce(flag, reduce_op="max") > 0)
        if bad:
            if scaler is not None:
                scaler.unscale_(opt.optimizer)  # records the overflow ...
                scaler.update()  # ... so the scale backs off
            opt.zero_grad(set_to_none=True)
            self.skipped_updates += 1
            self._consecutive_skips += 1
            if self._consecutive_skips > hp.max_consecutive_skips:
                raise CellvaeError(
                    f"training diverged: {self._consecutive_skips} updates in a row had a "
                    "non-finite or too large loss or gradient; lower model.lr or raise "
                    "model.skip_grad_norm"
                )
        else:
            self._consecutive_skips = 0
            opt.step()
            self.lr_schedulers().step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
        self._log_train(terms, beta, grad_norm)
        return loss

    def _writes_step_logs(self) -> bool:
        """Whether Lightning sends this step's ``on_step`` metrics to the loggers.

        It does so every ``trainer.log_every_n_steps``; values logged at other steps are
        overwritten unseen, yet each ``self.log`` call costs bookkeeping (about 9 % of a small
        model's CPU step for our dozen metrics). Lightning's own monitors (LearningRateMonitor,
        ThroughputMonitor) skip on this same condition.
        """
        trainer = self.trainer
        return bool(trainer.fast_dev_run) or trainer._logger_connector.should_update_logs

    def _log_train(self, terms, beta: float, grad_norm: Tensor) -> None:
        stats = {k: v.detach() for k, v in terms.per_dim(self.model.likelihood).items()}
        self.log("bpd", stats["bits_per_dim"], prog_bar=True, on_step=True, logger=False)
        if not self._writes_step_logs():
            return
        logs = {f"train/{k}": v for k, v in stats.items()}
        logs["train/loss"] = terms.loss.detach()
        logs["train/beta"] = torch.tensor(beta)
        logs["train/grad_norm"] = grad_norm.detach().float()
        logs["train/skipped_updates"] = self.skipped_updates.float()
        logs["train/lr"] = torch.tensor(self.optimizers().param_groups[0]["lr"])
        for name, kl in zip(self.model.group_names, terms.kl_groups):
            logs[f"train/kl_nats/{name}"] = kl.detach().mean()
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False)

    # ---------------------------------------------------------------- validation
    # Validation figures are weighted sums over real images, reduced across ranks once per
    # epoch (one all-reduce of every sum and count, on the module's device), so a rank with
    # fewer tiles weighs less and one with only padding (weight 0) weighs nothing; every rank
    # runs the same batches (the datamodule pads them), so every rank calls every reduce.
    def on_validation_epoch_start(self) -> None:
        self._moments: list[list] | None = None  # per group: [Σ μ, Σ μ², items]
        self._noise: list[Tensor] | None = None  # per group: Σ σ² of the posterior
        self._grid_batch: Tensor | None = None
        self._sums: dict[str, Tensor] = {}  # metric -> Σ batch mean × real images
        self._counts: dict[str, Tensor] = {}  # metric -> real images

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """ELBO terms, IWAE on the first batches, posterior-mean moments for active units."""
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """As validation, logged under ``test/``."""
        self._evaluate(batch, batch_idx, "test")

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def _input(self, x: Tensor) -> Tensor:
        """The batch in the network's memory format."""
        if self.hparams.channels_last:
            return x.contiguous(memory_format=_channels_last(x.ndim - 2))
        return x

    def _add(self, values: Mapping[str, Tensor], n: int) -> None:
        """Add batch means ``values`` of ``n`` real images to the epoch's weighted sums."""
        for key, value in values.items():
            weighted = value.detach().float() * n
            self._sums[key] = self._sums.get(key, 0) + weighted
            self._counts[key] = self._counts.get(key, 0) + torch.tensor(
                float(n), device=self.device
            )

    def _evaluate(self, batch: Any, batch_idx: int, stage: str) -> None:
        x = self._input(_images(batch))
        real = _real(batch, x)
        n = int(real.sum())
        if 0 < n < x.shape[0]:
            x = x[real]
        # an all-padding batch is still run (weight 0): every rank gets the same figures
        figures, posteriors = self._batch_figures(x, batch_idx, stage)
        self._add(figures, n)
        if posteriors is not None:
            self._accumulate_means(posteriors, keep=n > 0)
            self._accumulate_noise(posteriors, keep=n > 0)
        if batch_idx == 0 and n > 0:
            self._grid_batch = x[: self.hparams.grid_images]

    def _batch_figures(self, x: Tensor, batch_idx: int, stage: str):
        """Batch means of the figures of ``x`` (ELBO terms, KL per group, IWAE on the first
        batches) and the posteriors whose means count active units."""
        hp = self.hparams
        vae = self.eval_model
        terms = elbo_terms(vae, x, beta=1.0)
        logs = {f"{stage}/{k}": v for k, v in terms.per_dim(vae.likelihood).items()}
        for name, kl in zip(vae.group_names, terms.kl_groups):
            logs[f"{stage}/kl_nats/{name}"] = kl.mean()
        if hp.iwae_samples > 0 and (hp.iwae_batches is None or batch_idx < hp.iwae_batches):
            log_w = importance_log_weights(vae, x, hp.iwae_samples)
            if log_w is not None:
                nll = -iwae_bound(log_w).mean() / terms.dims
                bpd = bits_per_dim(nll, bool(vae.likelihood.discrete), vae.likelihood.bin_width)
                logs[f"{stage}/iwae_bits_per_dim"] = bpd
        return logs, terms.output.posteriors

    def _log_means(self) -> None:
        """Log every validation figure as its mean over all real images of all ranks."""
        if not self._sums:
            return
        keys = sorted(self._sums)
        stacked = torch.stack(
            [torch.as_tensor(self._sums[k], device=self.device) for k in keys]
            + [torch.as_tensor(self._counts[k], device=self.device) for k in keys]
        )
        total = self.trainer.strategy.reduce(stacked, reduce_op="sum")
        sums, counts = total[: len(keys)], total[len(keys) :]
        for key, s, c in zip(keys, sums, counts):
            mean = s / c if c > 0 else torch.full_like(s, float("nan"))
            # identical on every rank already: sync_dist only keeps Lightning's bookkeeping even
            self.log(key, mean, on_epoch=True, sync_dist=True)

    def _accumulate_means(self, posteriors, keep: bool = True) -> None:
        """Add the posterior means' moments (``keep=False``: a padding batch adds zeros, so
        every rank still holds moments of the same shapes for the reduce)."""
        moments = [unit_moments(p.mean) for p in posteriors]
        if self._moments is None:
            self._moments = [[torch.zeros_like(s), torch.zeros_like(s), 0] for s, _, _ in moments]
        if not keep:
            return
        for acc, (s, sq, n) in zip(self._moments, moments):
            acc[0] += s
            acc[1] += sq
            acc[2] += n

    def _accumulate_noise(self, posteriors, keep: bool = True) -> None:
        """Add the posterior variances' sums (``keep=False``: zeros, as ``_accumulate_means``)."""
        #: positions per image of each group (1 for a vector latent)
        self._positions = [math.prod(p.mean.shape[2:]) for p in posteriors]
        noise = [unit_moments(p.logvar.float().exp())[0] for p in posteriors]
        if not keep:
            noise = [torch.zeros_like(n) for n in noise]
        if self._noise is None:
            self._noise = noise
        else:
            self._noise = [acc + n for acc, n in zip(self._noise, noise)]

    def _log_information(self, stage: str) -> int | None:
        """Log each group's information (nats, summed over its units) and informative units.

        A unit's information is ``1/2 log(1 + Var(mu) / E[sigma^2])`` per position, times the
        positions per image (:func:`cellvae.metrics.information.group_information`); it is
        informative above ``INFORMATIVE_NATS``. Returns the total of informative units
        (``None``: no data).
        """
        if self._moments is None or self._noise is None:
            return None
        strategy = self.trainer.strategy
        total = 0
        groups = zip(self.eval_model.group_names, self._moments, self._noise, self._positions)
        for name, (s, sq, n), noise, positions in groups:
            # copies: the reduce is in place and _log_active_units reads the same sums
            s, sq, noise = (strategy.reduce(v.clone(), reduce_op="sum") for v in (s, sq, noise))
            # on the module's device: NCCL reduces GPU tensors only
            n = torch.tensor(float(n), device=self.device)
            count = max(float(strategy.reduce(n, reduce_op="sum")), 1.0)
            signal = activity_from_moments(s, sq, count)
            info = positions * information_from_moments(signal, noise / count)
            informative = int((info > INFORMATIVE_NATS).sum())
            total += informative
            self.log(f"{stage}/informative_units/{name}", float(informative), sync_dist=True)
            self.log(f"{stage}/information_nats/{name}", float(info.sum()), sync_dist=True)
        self.log(f"{stage}/informative_units", float(total), sync_dist=True)
        return total

    def _log_active_units(self, stage: str) -> int | None:
        """Log active units per group and in total; returns the total (``None``: no data)."""
        if self._moments is None:
            return None
        strategy = self.trainer.strategy
        total_active = 0
        for name, (s, sq, n) in zip(self.eval_model.group_names, self._moments):
            s = strategy.reduce(s.clone(), reduce_op="sum")  # in place: keep the sums
            sq = strategy.reduce(sq.clone(), reduce_op="sum")
            # on the module's device: NCCL reduces GPU tensors only
            n = torch.tensor(float(n), device=self.device)
            count = float(strategy.reduce(n, reduce_op="sum"))
            activity = activity_from_moments(s, sq, max(int(count), 1))
            active = int((activity > self.hparams.active_threshold).sum())
            total_active += active
            self.log(f"{stage}/active_units/{name}", float(active), sync_dist=True)
        # already summed over ranks; sync_dist only averages identical values
        self.log(f"{stage}/active_units", float(total_active), sync_dist=True)
        return total_active

    def _warn_on_collapse(self, informative: int | None) -> None:
        if informative != 0 or self.trainer.sanity_checking:
            return
        advice = collapse_advice(dict(self.hparams), self.global_step)
        rank_zero_warn(
            f"posterior collapse at step {self.global_step}: no latent unit carries information "
            f"(each posterior mean moves across inputs by less than its own spread: < "
            f"{INFORMATIVE_NATS:g} nats per unit), so the decoder ignores the latents. For this "
            f"run: {advice}"
        )

    def on_validation_epoch_end(self) -> None:
        self._log_means()
        self._log_active_units("val")
        self._warn_on_collapse(self._log_information("val"))
        if self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        if self.hparams.grid_images > 0 and self._grid_batch is not None:
            log_image_grid(self.trainer, self._image_grid(self._grid_batch))

    def on_test_epoch_end(self) -> None:
        self._log_means()
        self._log_active_units("test")
        self._warn_on_collapse(self._log_information("test"))

    @torch.no_grad()
    def _image_grid(self, x: Tensor):
        vae = self.eval_model
        recon = vae.likelihood.mean(vae(x).params.float())
        samples = vae.likelihood.mean(vae.sample_params(x.shape[0], self.patch_shape).float())
        return image_grid([x, recon, samples])
