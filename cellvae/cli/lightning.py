"""``cellvae fit | validate | test --config FILE``: training through LightningCLI.

``--preset NAME`` is ``--config`` with a preset shipped in the package, at the same place
among the options (:func:`cellvae.cli.presets.expand_presets`).

The ``model:`` section of a config is :class:`cellvae.training.module.VAEModule`'s constructor,
``data:`` is :class:`cellvae.data.datamodule.CellDataModule`'s and ``trainer:`` Lightning's
``Trainer``. The data's ``ndim`` and ``patch_size`` are copied to the model when the config is
parsed; its ``in_channels``, ``bits`` and ``voxel_size`` (read from the stored image) when it
is built. The resolved config is saved as ``config.yaml`` in the run's log directory, beside
``checkpoints/`` (which always gets ``last.ckpt`` when training stops, and is printed);
``--ckpt_path`` resumes a run exactly.

The run's folder (``trainer.default_root_dir``) is claimed before any work: one that cannot be
written, or that another ``cellvae`` process is training into, is one line.

``--ckpt_path auto`` resumes from the newest valid checkpoint of the run folder (requeue saves
and periodic saves, :func:`cellvae.training.requeue.newest_checkpoint`), or starts afresh
when there is none; a requeued SLURM job (``SLURM_RESTART_COUNT > 0``) does so without being
asked. A resumed run keeps writing into its ``lightning_logs/version_N``. Inside a SLURM job
every fit uses one requeue mechanism: ``SLURMEnvironment(auto_requeue=False)`` and the
:class:`~cellvae.training.requeue.SlurmRequeue` callback (saves and requeues on SIGUSR1 and
SIGTERM), unless the config names its own; SLURM's task count must equal
``trainer.devices x trainer.num_nodes`` (one task per device). Logs go to CSV
(what ``cellvae report`` reads) and TensorBoard when it is installed; off a terminal the bar
becomes plain progress lines; Lightning's advertisements and its FLOPs count of 0 are left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack

from cellvae.errors import CellvaeError

_HELP = {
    "fit": "train a VAE from a shipped preset (--preset NAME; cellvae presets lists them) or "
    "a YAML config (-c FILE)",
    "validate": "score a checkpoint on the validation patches (bits/dim, IWAE, active units)",
    "test": "score a checkpoint on the test patches",
}


#: the usage line after ``cellvae VERB`` (the full option list follows in the help)
USAGE = (
    "[-h] [--preset NAME | -c CONFIG.yaml] [--print_config] [--ckpt_path CKPT] "
    "[--trainer.KEY VALUE] [--model.KEY VALUE] [--data.KEY VALUE] ..."
)


def _help_cache(verb: str):
    """Where ``cellvae VERB --help`` is kept, keyed on every file its text depends on.

    Building the help imports torch and Lightning (seconds); the text only changes when
    cellvae's sources or the versions of lightning/jsonargparse do.
    """
    import hashlib
    import importlib.metadata
    from pathlib import Path

    import cellvae

    digest = hashlib.sha1()
    for dist in ("lightning", "jsonargparse", "cellvae"):
        try:
            digest.update(f"{dist}={importlib.metadata.version(dist)};".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{dist}=none;".encode())
    for path in sorted(Path(cellvae.__file__).parent.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cellvae" / f"help-{verb}-{digest.hexdigest()[:16]}.txt"


def _print_help(verb: str, argv: Sequence[str]) -> int:
    """``cellvae VERB --help`` from the cache, or built once by LightningCLI and cached."""
    import contextlib
    import io
    import sys

    cache = _help_cache(verb)
    try:
        text = cache.read_text()
    except OSError:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = run_lightning(verb, argv, use_cache=False)
        text = buffer.getvalue()
        if code == 0 and text:
            with contextlib.suppress(OSError):
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
                partial.write_text(text)
                os.replace(partial, cache)
    sys.stdout.write(text)
    return 0


def help_for(verb: str) -> str:
    """One line for ``cellvae --help``."""
    return _HELP[verb]


def _launch_rank() -> int:
    """This process's rank as a parallel launcher set it (torchrun, SLURM, Lightning's DDP
    launcher); 0 for a plain run."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]


def _in_slurm_job() -> bool:
    """Whether Lightning sees a SLURM job that manages this process's tasks."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


def _check_slurm_tasks(config: dict) -> None:
    """One task per device: SLURM's task count must equal ``devices x num_nodes``.

    Otherwise Lightning would start its own processes inside one task (or several tasks would
    each train alone), leaving GPUs idle or oversubscribed without a word.
    """
    from cellvae.errors import ConfigError

    tasks = os.environ.get("SLURM_NTASKS", "")
    devices, nodes = config.get("devices", 1), config.get("num_nodes", 1) or 1
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if not tasks.isdigit() or not isinstance(devices, int) or not isinstance(nodes, int):
        return
    if devices * nodes != int(tasks):
        raise ConfigError(
            f"trainer.devices x trainer.num_nodes = {devices} x {nodes} but SLURM started "
            f"{tasks} task(s); run one task per device (srun --ntasks={devices * nodes}, "
            f"or --trainer.devices={int(tasks) // nodes})"
        )


def _slurm_requeue_setup(config: dict, callbacks: list) -> dict:
    """Trainer arguments that give a SLURM job cellvae's one requeue mechanism."""
    from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment

    from cellvae.training.requeue import SlurmRequeue

    extra = {}
    plugins = _as_list(config.get("plugins"))
    if not any(isinstance(p, ClusterEnvironment) for p in plugins):
        extra["plugins"] = [*plugins, SLURMEnvironment(auto_requeue=False)]
    if not any(isinstance(c, SlurmRequeue) for c in callbacks):
        callbacks.append(SlurmRequeue())
    return extra


def _resume_version(root: str, ckpt: str | None) -> int | None:
    """The ``version_N`` a run resumed from ``ckpt`` in ``root`` keeps writing into."""
    from pathlib import Path

    from cellvae.training.callbacks import run_versions

    if not ckpt:
        return None
    try:
        inside = Path(ckpt).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return None  # a checkpoint from elsewhere starts a new version
    if len(inside.parts) >= 2 and inside.parts[0] == "lightning_logs":
        name = inside.parts[1]
        return int(name[8:]) if name[8:].isdigit() else None
    return max(run_versions(root), default=None)


def _requeued() -> bool:
    """Whether this process belongs to a SLURM job that was requeued (restart count > 0)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def _checkpoint_step(path: str | None) -> int | None:
    from pathlib import Path

    from cellvae.training.requeue import checkpoint_step

    return checkpoint_step(Path(path)) if path else None


def _cli_class(claims: ExitStack | None = None):
    from lightning.pytorch.cli import LightningCLI

    class CellvaeCLI(LightningCLI):
        """LightningCLI with the data's shape, channels and bit depth linked to the model."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.ndim", "model.ndim")
            parser.link_arguments("data.patch_size", "model.patch_size")
            parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
            parser.link_arguments("data.bits", "model.bits", apply_on="instantiate")
            parser.link_arguments("data.voxel_size", "model.voxel_size", apply_on="instantiate")

        def _add_subcommands(self, parser, **kwargs) -> None:
            """Usage lines that read ``cellvae VERB ...`` and headings that fit every verb."""
            super()._add_subcommands(parser, **kwargs)
            for name, sub in self._subcommand_parsers.items():
                sub.prog = f"cellvae {name}"
                sub.usage = f"cellvae {name} {USAGE}"
                sub.description = _HELP.get(name, sub.description)
                for group in sub._action_groups:
                    if (group.title or "").startswith("Customize every aspect of training"):
                        group.title = "Trainer options (--trainer.KEY VALUE)"

        def _parse_ckpt_path(self) -> None:
            """Refuse a ``--ckpt_path`` that is no checkpoint in one line (never suggesting
            ``weights_only=False``) before Lightning reads its hyper-parameters."""
            from cellvae.training.checkpoint import check_checkpoint

            sub = self.config.get("subcommand")
            ckpt = self.config[sub].get("ckpt_path") if sub else None
            if sub == "fit" and (ckpt == "auto" or (ckpt is None and _requeued())):
                ckpt = self._newest_checkpoint(sub)
                self.config[sub]["ckpt_path"] = ckpt
            if ckpt not in (None, "last", "best", "hpc", "registry"):
                check_checkpoint(ckpt)
            super()._parse_ckpt_path()

        def _newest_checkpoint(self, sub: str) -> str | None:
            """``--ckpt_path auto``: the newest valid checkpoint of the run folder, or None."""
            import sys

            from cellvae.training.requeue import newest_checkpoint

            root = self.config[sub].get("trainer", {}).get("default_root_dir") or os.getcwd()
            found = newest_checkpoint(root)
            if _launch_rank() == 0:
                said = f"resuming from {found}" if found else f"no checkpoint in {root}"
                print(f"cellvae fit: --ckpt_path auto: {said}", file=sys.stderr, flush=True)
            self._resumed = str(found) if found else None
            return self._resumed

        def instantiate_trainer(self, **kwargs):
            """Claim the run folder, then add cellvae's console (bar, summary, loggers)."""
            from cellvae.io.atomic import claim_folder
            from cellvae.training import callbacks as cb

            config = dict(self._get(self.config_init, "trainer", default={}))
            root = config.get("default_root_dir") or os.getcwd()
            first = _launch_rank() == 0  # other processes of a parallel run share its folder
            if claims is not None and first:
                claims.enter_context(claim_folder(root))
            if config.get("logger") in (None, True) and first:
                resumed = getattr(self, "_resumed", None)
                version = _resume_version(root, resumed)
                step = _checkpoint_step(resumed) if version is not None else None
                kwargs["logger"] = cb.default_loggers(root, version, step)
            extra = []
            if config.get("enable_progress_bar") is not False:
                extra.append(cb.progress_bar())
            if config.get("enable_model_summary") is not False:
                extra.append(cb.BriefModelSummary())
            callbacks = [*_as_list(config.get("callbacks")), *extra]
            if _in_slurm_job():
                _check_slurm_tasks(config)
                kwargs.update(_slurm_requeue_setup(config, callbacks))
            kwargs["callbacks"] = callbacks
            return super().instantiate_trainer(**kwargs)

    return CellvaeCLI


def _note_early_signals() -> None:
    """In a SLURM job, note SIGUSR1/SIGTERM that arrive before training starts (importing
    torch, building the model, joining the other ranks) instead of dying of them; the
    requeue callback acts on a noted one at the first step."""
    import signal
    import threading

    if (
        not os.environ.get("SLURM_JOB_ID")
        or threading.current_thread() is not threading.main_thread()
    ):
        return

    def note(signum, frame) -> None:
        os.environ.setdefault("CELLVAE_EARLY_SIGNAL", str(signum))

    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, note)


def _ignore_late_warning() -> None:
    """In a SLURM job, ignore the pre-limit warning (SIGUSR1) once ``fit`` has returned: there
    is nothing left to save, and Python restores the default action (terminate) for its own
    handlers while it shuts down, so a warning arriving then failed a finished job."""
    import signal
    import threading

    if os.environ.get("SLURM_JOB_ID") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def run_lightning(verb: str, argv: Sequence[str], use_cache: bool = True) -> int:
    """Run ``cellvae VERB ARGV...`` through LightningCLI; returns the exit code.

    Usage errors (unknown keys, wrong types) are printed by jsonargparse (exit code 2); a
    :class:`~cellvae.errors.CellvaeError` from a constructor, or Lightning's
    ``MisconfigurationException`` turned into one, propagates to ``cellvae.cli.main``, which
    prints it as one line. ``VERB --help`` alone is served from a cache after its first use.
    """
    if use_cache and list(argv) in (["--help"], ["-h"]):
        return _print_help(verb, argv)
    if verb != "fit":
        return _run_lightning(verb, argv)
    _note_early_signals()
    try:
        return _run_lightning(verb, argv)
    finally:
        _ignore_late_warning()


def _run_lightning(verb: str, argv: Sequence[str]) -> int:
    from cellvae.cli.precheck import check_fit_arguments
    from cellvae.cli.presets import expand_presets

    argv = expand_presets(list(argv))
    check_fit_arguments(argv)  # files named on the command line, before torch is imported

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
                parser_kwargs={"prog": "cellvae"},
            )
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except MisconfigurationException as err:  # e.g. a Trainer option that does not fit
        raise CellvaeError(str(err).strip().splitlines()[0]) from None
    return 0
