"""``cellvae fit | validate | test --config FILE``: training through LightningCLI.

The ``model:`` section of a config is :class:`cellvae.training.module.VAEModule`'s constructor,
``data:`` is :class:`cellvae.data.datamodule.CellDataModule`'s and ``trainer:`` Lightning's
``Trainer``. The data's ``ndim`` and ``patch_size`` are copied to the model when the config is
parsed; its ``in_channels`` and ``bits`` (read from the stored image) when it is built. The
resolved config is saved as ``config.yaml`` in the run's log directory, beside
``checkpoints/`` (which always gets ``last.ckpt`` when training stops, and is printed);
``--ckpt_path`` resumes a run exactly.

The run's folder (``trainer.default_root_dir``) is claimed before any work: one that cannot be
written, or that another ``cellvae`` process is training into, is one line. Logs go to CSV
(what ``cellvae report`` reads) and TensorBoard when it is installed; off a terminal the bar
becomes plain progress lines; Lightning's advertisements and its FLOPs count of 0 are left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack

from cellvae.errors import CellvaeError

_HELP = {
    "fit": "train a VAE from a YAML config (LightningCLI; see configs/)",
    "validate": "score a checkpoint on the validation patches (bits/dim, IWAE, active units)",
    "test": "score a checkpoint on the test patches",
}


def help_for(verb: str) -> str:
    """One line for ``cellvae --help``."""
    return _HELP[verb]


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]


def _cli_class(claims: ExitStack | None = None):
    from lightning.pytorch.cli import LightningCLI

    class CellvaeCLI(LightningCLI):
        """LightningCLI with the data's shape, channels and bit depth linked to the model."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.ndim", "model.ndim")
            parser.link_arguments("data.patch_size", "model.patch_size")
            parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
            parser.link_arguments("data.bits", "model.bits", apply_on="instantiate")

        def instantiate_trainer(self, **kwargs):
            """Claim the run folder, check ``--ckpt_path``, then add cellvae's console."""
            from cellvae.io.atomic import claim_folder
            from cellvae.training import callbacks as cb
            from cellvae.training.checkpoint import check_checkpoint

            config = dict(self._get(self.config_init, "trainer", default={}))
            root = config.get("default_root_dir") or os.getcwd()
            if claims is not None:
                claims.enter_context(claim_folder(root))
            ckpt = self._get(self.config, "ckpt_path", default=None)
            if ckpt not in (None, "last", "best", "hpc", "registry"):
                check_checkpoint(ckpt)
            if config.get("logger") in (None, True):
                kwargs["logger"] = cb.default_loggers(root)
            extra = []
            if config.get("enable_progress_bar") is not False:
                extra.append(cb.progress_bar())
            if config.get("enable_model_summary") is not False:
                extra.append(cb.BriefModelSummary())
            kwargs["callbacks"] = [*_as_list(config.get("callbacks")), *extra]
            return super().instantiate_trainer(**kwargs)

    return CellvaeCLI


def run_lightning(verb: str, argv: Sequence[str]) -> int:
    """Run ``cellvae VERB ARGV...`` through LightningCLI; returns the exit code.

    Usage errors (unknown keys, wrong types) are printed by jsonargparse (exit code 2); a
    :class:`~cellvae.errors.CellvaeError` from a constructor, or Lightning's
    ``MisconfigurationException`` turned into one, propagates to ``cellvae.cli.main``, which
    prints it as one line.
    """
    import warnings

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from cellvae.data.datamodule import CellDataModule
    from cellvae.training.callbacks import FinalCheckpoint, quiet_lightning_tips
    from cellvae.training.module import VAEModule

    # argv comes from the `cellvae` command line itself, which is what Lightning warns about
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    quiet_lightning_tips()
    try:
        with ExitStack() as claims:
            _cli_class(claims)(
                VAEModule,
                CellDataModule,
                args=[verb, *argv],
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                trainer_defaults={"callbacks": [FinalCheckpoint()]},
                seed_everything_default=0,
            )
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except MisconfigurationException as err:  # e.g. a Trainer option that does not fit
        raise CellvaeError(str(err).strip().splitlines()[0]) from None
    return 0
