"""Callbacks that every ``cellvae fit`` run gets, and the quiet defaults of its console."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, ProgressBar


class FinalCheckpoint(L.Callback):
    """Write ``checkpoints/last.ckpt`` when training stops, wherever in an epoch that is.

    Lightning's ``ModelCheckpoint`` saves at validation or epoch ends only, so a run stopped by
    ``max_steps`` mid-epoch would otherwise leave its last updates unsaved. The file resumes
    exactly (``--ckpt_path``) and is what ``cellvae validate``/``reconstruct`` read; its path
    is printed, so a user knows what to pass on.
    """

    filename = "last.ckpt"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        if folder is None:
            folder = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        path = Path(folder) / self.filename
        # full state (optimiser, schedulers, loops): resuming needs it, not only the weights
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            print(f"checkpoint: {path}", flush=True)


def _number(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class LineProgress(ProgressBar):
    """Progress as plain lines, for output that is not a terminal (a log file, SLURM).

    One line at most every ``every_s`` seconds during training, and one after each
    validation, with the step, the step limit when there is one, and the bar's metrics.
    """

    def __init__(self, every_s: float = 30.0, stream=None) -> None:
        super().__init__()
        self.every_s, self.stream = every_s, stream
        self._enabled, self._last, self._start = True, float("-inf"), time.monotonic()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _line(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._last = time.monotonic()
        limit = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        metrics = self.get_metrics(trainer, pl_module)
        shown = " ".join(f"{k} {_number(v)}" for k, v in metrics.items() if k != "v_num")
        elapsed = time.monotonic() - self._start
        text = f"{what} epoch {trainer.current_epoch} step {trainer.global_step}{limit}"
        print(
            f"{text} {shown} ({elapsed:.0f} s)".replace("  ", " "), file=self.stream or sys.stdout
        )
        (self.stream or sys.stdout).flush()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._line(trainer, pl_module, "train")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._line(trainer, pl_module, "validated")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._line(trainer, pl_module, "done")


def _rich_bar():
    """Lightning's rich bar, reading ``Epoch N`` (not ``Epoch N/-2``) without an epoch limit."""
    from lightning.pytorch.callbacks import RichProgressBar

    class EpochBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
                return super()._get_train_description(current_epoch)
            text = f"Epoch {current_epoch}"
            return f"{text:{len(self.validation_description)}}"

    return EpochBar()


def progress_bar(stream=None) -> ProgressBar:
    """The bar for this run: rich (or tqdm) on a terminal, :class:`LineProgress` otherwise."""
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

    stream = stream or sys.stdout
    if not stream.isatty():
        return LineProgress(stream=stream)
    return _rich_bar() if _RICH_AVAILABLE else TQDMProgressBar()


class BriefModelSummary(ModelSummary):
    """The model summary without the FLOPs column, which Lightning can only count with an
    ``example_input_array`` (otherwise it prints ``Total FLOPs: 0``)."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )

        columns = [c for c in summary_data if c[0] != "FLOPs" or total_flops]
        widths = [max(len(name), *(len(v) for v in values)) for name, values in columns]
        rows = [[name for name, _ in columns]] + [list(r) for r in zip(*(v for _, v in columns))]
        lines = [" | ".join(f"{c:<{w}}" for c, w in zip(row, widths)) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(
            f"{get_human_readable_count(int(total_parameters))} parameters "
            f"({get_human_readable_count(int(trainable_parameters))} trainable), "
            f"{get_formatted_model_size(model_size)} MB"
        )
        logging.getLogger("lightning.pytorch.callbacks.model_summary").info("\n".join(lines))


class _NoTips(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: ... try installing ...``) and its note that
    cellvae's own model summary replaces the default one."""

    dropped = ("💡 Tip", "Trainer already configured with model summary")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.dropped)


def quiet_lightning_tips() -> None:
    """Stop Lightning's promotional tips; its real messages are kept."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in logger.filters):
            logger.addFilter(_NoTips())


def default_loggers(root: str | Path) -> list:
    """CSV always (the report reads ``metrics.csv``), plus TensorBoard when it is installed;
    both in ``ROOT/lightning_logs/version_N`` with the same N, without Lightning's notice."""
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logs = Path(root) / "lightning_logs"
    taken = [int(p.name[8:]) for p in logs.glob("version_*") if p.name[8:].isdigit()]
    version = max(taken, default=-1) + 1
    loggers = [CSVLogger(save_dir=root, version=version)]
    if any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        loggers.append(TensorBoardLogger(save_dir=root, version=version))
    return loggers
