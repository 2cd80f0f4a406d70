"""Requeue a SLURM training job before its time limit, safely under DDP.

SLURM sends a signal shortly before the limit (``#SBATCH --signal=SIGUSR1@90``). Lightning's
own auto-requeue saves the checkpoint *inside* the signal handler, i.e. at whatever bytecode
each rank happens to be executing; under DDP the ranks then enter the checkpoint's barrier out
of step with their other collectives and hang (Lightning issue #21406, reproduced here with
two gloo ranks). :class:`SlurmRequeue` only sets a flag in the handler; at the next step
boundary the ranks agree (any rank flagged = all stop), all save the checkpoint where
Lightning's resume looks for it (``DEFAULT_ROOT_DIR/hpc_ckpt_N.ckpt``), rank 0 runs
``scontrol requeue`` and training stops. The requeued job (same job id, same
``default_root_dir``) resumes from that checkpoint at the same global step. Use it with
``SLURMEnvironment(auto_requeue=False)`` (configs/layers/slurm_ddp.yaml does).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess

import lightning as L

log = logging.getLogger(__name__)


class SlurmRequeue(L.Callback):
    """Save and requeue at the first step boundary after ``signal_name`` arrives.

    Parameters
    ----------
    signal_name : the signal SLURM sends before the time limit; must match the sbatch
        ``--signal`` option (``SIGUSR1`` in workflows/hpc/train_ddp.sbatch).
    requeue : run ``scontrol requeue $SLURM_JOB_ID`` (rank 0); without a SLURM job id the
        checkpoint is still saved and training stops.
    """

    def __init__(self, signal_name: str = "SIGUSR1", requeue: bool = True) -> None:
        self.signum = signal.Signals[signal_name]
        self.requeue = requeue
        self.requested = False
        self._previous = None

    def _flag(self, signum, frame) -> None:  # only a flag: a handler may run mid-collective
        self.requested = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.requested = False
        self._previous = signal.signal(self.signum, self._flag)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path, weights_only=False)  # all ranks, in step
        log.warning("%s: saved %s at step %d", self.signum.name, path, trainer.global_step)
        if trainer.is_global_zero and self.requeue:
            self._requeue()
        trainer.should_stop = True

    @staticmethod
    def _requeue() -> None:
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = (
            f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            if array_job
            else os.environ.get("SLURM_JOB_ID")
        )
        if not job:
            log.warning("not a SLURM job: checkpoint saved, nothing requeued")
            return
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if done.returncode == 0:
            log.warning("requeued SLURM job %s", job)
        else:
            log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
