"""Callbacks that every ``cellvae fit`` run gets."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class FinalCheckpoint(L.Callback):
    """Write ``checkpoints/last.ckpt`` when training stops, wherever in an epoch that is.

    Lightning's ``ModelCheckpoint`` saves at validation or epoch ends only, so a run stopped by
    ``max_steps`` mid-epoch would otherwise leave its last updates unsaved. The file resumes
    exactly (``--ckpt_path``) and is what ``cellvae validate``/``reconstruct`` read.
    """

    filename = "last.ckpt"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        if folder is None:
            folder = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        # full state (optimiser, schedulers, loops): resuming needs it, not only the weights
        trainer.save_checkpoint(Path(folder) / self.filename, weights_only=False)
