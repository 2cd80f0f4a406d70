"""``cellvae fit | validate | test --config FILE``: training through LightningCLI.

The ``model:`` section of a config is :class:`cellvae.training.module.VAEModule`'s constructor,
``data:`` is :class:`cellvae.data.datamodule.CellDataModule`'s and ``trainer:`` Lightning's
``Trainer``. The data's ``ndim`` and ``patch_size`` are copied to the model when the config is
parsed; its ``in_channels``, ``bits`` and ``voxel_size`` (read from the stored image) when it
is built. The resolved config is saved as ``config.yaml`` in the run's log directory, beside
``checkpoints/`` (which always gets ``last.ckpt`` when training stops); ``--ckpt_path``
resumes a run exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from cellvae.errors import CellvaeError

_HELP = {
    "fit": "train a VAE from a YAML config (LightningCLI; see configs/)",
    "validate": "score a checkpoint on the validation patches (bits/dim, IWAE, active units)",
    "test": "score a checkpoint on the test patches",
}


def help_for(verb: str) -> str:
    """One line for ``cellvae --help``."""
    return _HELP[verb]


def _cli_class():
    from lightning.pytorch.cli import LightningCLI

    class CellvaeCLI(LightningCLI):
        """LightningCLI with the data's shape, channels and bit depth linked to the model."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.ndim", "model.ndim")
            parser.link_arguments("data.patch_size", "model.patch_size")
            parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
            parser.link_arguments("data.bits", "model.bits", apply_on="instantiate")
            parser.link_arguments("data.voxel_size", "model.voxel_size", apply_on="instantiate")

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
    from cellvae.training.callbacks import FinalCheckpoint
    from cellvae.training.module import VAEModule

    # argv comes from the `cellvae` command line itself, which is what Lightning warns about
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    try:
        _cli_class()(
            VAEModule,
            CellDataModule,
            args=[verb, *argv],
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            trainer_defaults={"callbacks": [FinalCheckpoint()]},
        )
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except MisconfigurationException as err:  # e.g. a Trainer option that does not fit
        raise CellvaeError(str(err).strip().splitlines()[0]) from None
    return 0
