"""Save and requeue a SLURM training job on any signal that ends it, safely under DDP.

SLURM ends a job in three ways that leave time to save: a warning signal before the time
limit (``#SBATCH --signal=SIGUSR1@90``), and ``SIGTERM`` on preemption, ``scontrol requeue``
or the limit itself (``KillWait`` seconds before ``SIGKILL``). Lightning's own auto-requeue
saves the checkpoint *inside* the signal handler, i.e. at whatever bytecode each rank happens
to be executing; under DDP the ranks then enter the checkpoint's barrier out of step with
their other collectives and hang (Lightning issue #21406, reproduced here with two gloo
ranks). :class:`SlurmRequeue` only sets a flag in the handler. At the next training *or
validation* batch boundary the ranks agree (any rank flagged = all act), every rank calls
``save_checkpoint`` (rank 0 writes ``DEFAULT_ROOT_DIR/hpc_ckpt_N.ckpt``, where
:func:`newest_checkpoint` and Lightning look for it), rank 0 removes all but the newest
``keep`` of those files and runs ``scontrol requeue``, and training stops. The requeued job
(same job id, same ``default_root_dir``) resumes from that checkpoint at the same global step.

Every action is one line on stderr, ``cellvae requeue: rank R: ...``, naming the step, so a
job's log says which rank saved, which asked SLURM to requeue and when.
Use it with ``SLURMEnvironment(auto_requeue=False)``; ``cellvae fit`` under SLURM sets both.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L

#: checkpoints a requeue writes into the run folder: ``hpc_ckpt_N.ckpt``
HPC_CKPT = re.compile(r"^hpc_ckpt_(\d+)\.ckpt$")
#: where ``cellvae fit`` notes a signal that arrived before training started (set by the
#: handler :mod:`cellvae.cli.lightning` installs at once; read by :class:`SlurmRequeue`)
EARLY_SIGNAL_ENV = "CELLVAE_EARLY_SIGNAL"


def slurm_job() -> str | None:
    """The id ``scontrol requeue`` needs: ``ARRAYJOB_TASK`` in an array, else the job id."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def hpc_checkpoints(root: str | os.PathLike) -> list[Path]:
    """``hpc_ckpt_N.ckpt`` files in ``root``, oldest (lowest N) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := HPC_CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_hpc_checkpoints(root: str | os.PathLike, keep: int = 2) -> list[Path]:
    """Remove all but the newest ``keep`` ``hpc_ckpt_N.ckpt`` of ``root``; returns the removed."""
    old = hpc_checkpoints(root)[:-keep] if keep > 0 else hpc_checkpoints(root)
    for path in old:
        path.unlink(missing_ok=True)
    return old


def say(trainer: L.Trainer, text: str) -> None:
    """One ``cellvae requeue: rank R: TEXT`` line on stderr (every rank speaks for itself)."""
    print(f"cellvae requeue: rank {trainer.global_rank}: {text}", file=sys.stderr, flush=True)


class SlurmRequeue(L.Callback):
    """Save and requeue at the first batch boundary after ``signal_name`` (or SIGTERM).

    Parameters
    ----------
    signal_name : the signal SLURM sends before the time limit; must match the sbatch
        ``--signal`` option (``SIGUSR1`` in workflows/hpc/train_ddp.sbatch).
    on_sigterm : also save and requeue on ``SIGTERM`` (preemption, ``scontrol requeue``, the
        time limit itself). Requeuing a job that SLURM is already requeuing, or that was
        cancelled, fails harmlessly (the line says so).
    requeue : run ``scontrol requeue JOB`` (rank 0 only); without a SLURM job id the
        checkpoint is still saved and training stops.
    keep : ``hpc_ckpt_N.ckpt`` files kept in the run folder (the newest ones).
    """

    def __init__(
        self,
        signal_name: str = "SIGUSR1",
        on_sigterm: bool = True,
        requeue: bool = True,
        keep: int = 2,
    ) -> None:
        self.signum = signal.Signals[signal_name]
        self.signals = [self.signum] + ([signal.SIGTERM] if on_sigterm else [])
        self.requeue = requeue
        self.keep = keep
        self.received: signal.Signals | None = None
        self.received_after: int | None = None  # the last step finished before the signal
        self.acted = False
        self._step = 0
        self._previous: dict[signal.Signals, object] = {}

    def _flag(self, signum, frame) -> None:  # only a flag: a handler may run mid-collective
        if self.received is None:
            self.received = signal.Signals(signum)
            self.received_after = self._step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self.received_after, self.acted = None, None, False
        self._step = trainer.global_step
        for signum in self.signals:  # replaces Lightning's SIGTERM handler for this fit
            self._previous[signum] = signal.signal(signum, self._flag)
        early = os.environ.pop(EARLY_SIGNAL_ENV, "")
        if early.isdigit() and int(early) in self.signals:  # came while the job was starting
            self._flag(int(early), None)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registers its own SIGTERM handler after on_fit_start, composed with ours;
        # it broadcasts inside the handler and raises SIGTERMException at the next batch
        # start, which can win the race against our save at the batch end. Ours alone, again.
        for signum in self.signals:
            signal.signal(signum, self._flag)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        self._step = trainer.global_step
        self._act_if_flagged(trainer, "training")

    def on_validation_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._act_if_flagged(trainer, "validation")

    def _act_if_flagged(self, trainer: L.Trainer, where: str) -> None:
        """Every rank calls this at the same boundaries: the decision is a collective."""
        if self.acted:
            return
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        self.acted = True
        if self.received is not None:
            say(
                trainer,
                f"{self.received.name} received after step {self.received_after}; "
                f"saving at step {trainer.global_step} ({where})",
            )
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path, weights_only=False)  # all ranks, in step; rank 0 writes
        trainer.should_stop = True
        if not trainer.is_global_zero:
            say(trainer, f"stopped at step {trainer.global_step}")
            return
        say(trainer, f"saved {path} at step {trainer.global_step}")
        for old in prune_hpc_checkpoints(trainer.default_root_dir, self.keep):
            say(trainer, f"removed {old.name}")
        if self.requeue:
            self._requeue(trainer)

    @staticmethod
    def _requeue(trainer: L.Trainer) -> bool:
        job = slurm_job()
        if not job:
            say(trainer, "not a SLURM job: checkpoint saved, nothing requeued")
            return False
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if done.returncode == 0:
            say(trainer, f"requeued SLURM job {job}")
            return True
        say(trainer, f"scontrol requeue {job} failed: {done.stderr.strip()}")
        return False


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The global step a checkpoint holds, or None when it is unreadable (cut short by a
    kill mid-write, damaged) or no Lightning training checkpoint."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file is simply not a candidate
        return None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "loops" not in ckpt:
        return None
    step = ckpt.get("global_step")
    return int(step) if isinstance(step, int) else None


def newest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint of ``root`` to resume from: the highest global step that loads.

    Candidates are the requeue saves (``ROOT/hpc_ckpt_N.ckpt``) and every checkpoint of the
    run's log folders (``ROOT/lightning_logs/*/checkpoints/*.ckpt``: periodic saves and
    ``last.ckpt``), so a job killed without warning (``SIGKILL``, a node failure) resumes
    from its last periodic save. At equal steps a requeue save wins, then the newest file.
    ``None`` when there is none.
    """
    root = Path(root)
    hpc = hpc_checkpoints(root)
    candidates = [*hpc, *root.glob("lightning_logs/*/checkpoints/*.ckpt")]
    best: tuple[tuple[int, bool, int], Path] | None = None
    for path in candidates:
        step = checkpoint_step(path)
        if step is None:
            continue
        rank = (step, path in hpc, path.stat().st_mtime_ns)  # ties: a requeue save, then newest
        if best is None or rank > best[0]:
            best = (rank, path)
    return None if best is None else best[1]
