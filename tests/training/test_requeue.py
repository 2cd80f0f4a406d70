"""SlurmRequeue on fake trainers: which rank saves, which asks SLURM to requeue, and at which
step the signal is acted on (in training and in validation); SIGTERM; pruning; resuming from
the newest valid checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cellvae.training import requeue as rq


class FakeWorld:
    """The ranks of one job: a decision is True when any rank's callback was signalled."""

    def __init__(self, n: int) -> None:
        self.callbacks: list[rq.SlurmRequeue] = []
        self.decisions: list[int] = []  # global rank of every reduce call, in order

    def reduce_any(self, rank: int, flag: bool) -> bool:
        self.decisions.append(rank)
        return any(cb.received is not None for cb in self.callbacks)


class FakeTrainer:
    """What SlurmRequeue reads and calls on a Lightning trainer, recorded."""

    def __init__(self, world: FakeWorld, rank: int, root: Path) -> None:
        self.global_rank, self.is_global_zero = rank, rank == 0
        self.global_step, self.default_root_dir = 0, str(root)
        self.sanity_checking, self.should_stop = False, False
        self.state = SimpleNamespace(fn="fit")
        self.saved: list[tuple[str, int]] = []
        self.strategy = SimpleNamespace(
            reduce_boolean_decision=lambda flag, all=True: world.reduce_any(rank, flag)
        )
        self._checkpoint_connector = SimpleNamespace(hpc_save_path=self._hpc_save_path)

    def _hpc_save_path(self, root: str) -> str:
        n = max([int(p.stem.split("_")[-1]) for p in rq.hpc_checkpoints(root)], default=0)
        return os.path.join(root, f"hpc_ckpt_{n + 1}.ckpt")

    def save_checkpoint(self, path: str, weights_only: bool = False) -> None:
        """As Lightning: every rank calls it (a barrier follows), rank 0 writes ``path``."""
        assert weights_only is False  # resuming needs the optimiser and loop states
        self.saved.append(self.global_step)
        if self.is_global_zero:
            Path(path).write_bytes(b"ckpt")


@pytest.fixture
def scontrol(monkeypatch):
    """Every `scontrol` call, as (rank that called, argv); the job is 4242."""
    calls = []
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)

    def run(argv, **kwargs):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(rq.subprocess, "run", run)
    return calls


def _job(tmp_path, n=2, **kwargs):
    world = FakeWorld(n)
    trainers = [FakeTrainer(world, r, tmp_path) for r in range(n)]
    world.callbacks = [rq.SlurmRequeue(**kwargs) for _ in range(n)]
    for cb, trainer in zip(world.callbacks, trainers):
        cb.on_fit_start(trainer, None)
    return world, trainers


def _train_steps(world, trainers, steps):
    for _ in range(steps):
        for cb, trainer in zip(world.callbacks, trainers):
            trainer.global_step += 1
            cb.on_train_batch_end(trainer, None, None, None, 0)


def _teardown(world, trainers):
    """Restore the handlers, last installed first (the fake ranks share one process)."""
    for cb, trainer in reversed(list(zip(world.callbacks, trainers))):
        cb.teardown(trainer, None, "fit")


def test_signal_to_one_rank_makes_every_rank_save_at_the_next_step_and_rank_0_requeue(
    tmp_path, scontrol, capfd
):
    world, trainers = _job(tmp_path)
    try:
        _train_steps(world, trainers, 5)
        world.callbacks[1]._flag(signal.SIGUSR1, None)  # SLURM's signal reaches rank 1 first
        _train_steps(world, trainers, 3)
    finally:
        _teardown(world, trainers)
    assert [t.saved for t in trainers] == [[6], [6]]
    assert [t.should_stop for t in trainers] == [True, True]
    assert scontrol == [["scontrol", "requeue", "4242"]]  # once, by rank 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hpc_ckpt_1.ckpt"]
    err = capfd.readouterr().err
    assert "rank 1: SIGUSR1 received after step 5; saving at step 6 (training)" in err
    assert "rank 0: requeued SLURM job 4242" in err and "rank 1: requeued" not in err
    assert "rank 0: SIGUSR1" not in err  # rank 0 acted on rank 1's signal, not its own


def test_every_rank_takes_part_in_the_decision_at_every_boundary(tmp_path, scontrol):
    world, trainers = _job(tmp_path, n=3)
    try:
        _train_steps(world, trainers, 4)
    finally:
        _teardown(world, trainers)
    assert world.decisions == [0, 1, 2] * 4  # a collective: no rank may skip it
    assert scontrol == [] and all(t.saved == [] for t in trainers)


def test_signal_during_validation_is_acted_on_in_validation(tmp_path, scontrol):
    world, trainers = _job(tmp_path)
    try:
        _train_steps(world, trainers, 10)
        world.callbacks[0]._flag(signal.SIGUSR1, None)
        for cb, trainer in zip(world.callbacks, trainers):
            cb.on_validation_batch_end(trainer, None, None, None, 0)
    finally:
        _teardown(world, trainers)
    assert [t.saved for t in trainers] == [[10], [10]]
    assert scontrol == [["scontrol", "requeue", "4242"]]


def test_sanity_check_validation_does_not_act(tmp_path, scontrol):
    world, trainers = _job(tmp_path)
    try:
        world.callbacks[0]._flag(signal.SIGUSR1, None)
        for cb, trainer in zip(world.callbacks, trainers):
            trainer.sanity_checking = True
            cb.on_validation_batch_end(trainer, None, None, None, 0)
    finally:
        _teardown(world, trainers)
    assert world.decisions == [] and all(t.saved == [] for t in trainers)


def test_sigterm_saves_and_requeues_once_and_later_signals_are_ignored(tmp_path, scontrol):
    world, trainers = _job(tmp_path, n=1)
    try:
        _train_steps(world, trainers, 2)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler is installed: only a flag
        _train_steps(world, trainers, 1)
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. SLURM killing the requeued job
        os.kill(os.getpid(), signal.SIGUSR1)
        _train_steps(world, trainers, 2)
    finally:
        _teardown(world, trainers)
    assert trainers[0].saved == [3] and (tmp_path / "hpc_ckpt_1.ckpt").exists()
    assert scontrol == [["scontrol", "requeue", "4242"]]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored at teardown


def test_without_on_sigterm_sigterm_is_not_handled(tmp_path, scontrol):
    world, trainers = _job(tmp_path, n=1, on_sigterm=False)
    try:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        _teardown(world, trainers)


def test_array_task_is_requeued_by_its_array_id(tmp_path, scontrol, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    world, trainers = _job(tmp_path, n=1)
    try:
        world.callbacks[0]._flag(signal.SIGUSR1, None)
        _train_steps(world, trainers, 1)
    finally:
        _teardown(world, trainers)
    assert scontrol == [["scontrol", "requeue", "77_3"]]


def test_only_the_newest_two_hpc_checkpoints_are_kept(tmp_path, scontrol):
    for n in (1, 2, 3):
        (tmp_path / f"hpc_ckpt_{n}.ckpt").write_bytes(b"old")
    world, trainers = _job(tmp_path, n=1)
    try:
        world.callbacks[0]._flag(signal.SIGUSR1, None)
        _train_steps(world, trainers, 1)
    finally:
        _teardown(world, trainers)
    assert [p.name for p in rq.hpc_checkpoints(tmp_path)] == ["hpc_ckpt_3.ckpt", "hpc_ckpt_4.ckpt"]


def _fake_lightning_ckpt(path: Path, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {}, "loops": {}}, path)
    return path


def test_newest_valid_checkpoint_wins_and_a_truncated_one_is_skipped(tmp_path):
    assert rq.newest_checkpoint(tmp_path) is None
    periodic = _fake_lightning_ckpt(
        tmp_path / "lightning_logs/version_0/checkpoints/epoch=0-step=30.ckpt", 30
    )
    _fake_lightning_ckpt(tmp_path / "hpc_ckpt_1.ckpt", 20)
    assert rq.newest_checkpoint(tmp_path) == periodic  # the highest step, wherever it is
    cut = _fake_lightning_ckpt(tmp_path / "hpc_ckpt_2.ckpt", 40)
    cut.write_bytes(cut.read_bytes()[:-100])  # killed mid-write
    assert rq.newest_checkpoint(tmp_path) == periodic
    torch.save({"weights": 1}, tmp_path / "hpc_ckpt_3.ckpt")  # not a training checkpoint
    assert rq.newest_checkpoint(tmp_path) == periodic


def test_a_signal_noted_while_the_job_started_is_acted_on_at_the_first_step(
    tmp_path, scontrol, monkeypatch
):
    monkeypatch.setenv(rq.EARLY_SIGNAL_ENV, str(int(signal.SIGUSR1)))  # cellvae fit noted it
    world, trainers = _job(tmp_path, n=1)
    try:
        _train_steps(world, trainers, 2)
    finally:
        _teardown(world, trainers)
    assert trainers[0].saved == [1] and scontrol == [["scontrol", "requeue", "4242"]]
    assert rq.EARLY_SIGNAL_ENV not in os.environ  # used once


def test_a_real_fit_handles_sigterm_alone_and_stops_after_saving(tmp_path, scontrol):
    """Lightning composes its own SIGTERM handler with ours after on_fit_start; that one sets
    `received_sigterm` (then SIGTERMException at the next batch start, racing our save)."""
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    class TermAtStep2(BoringModel):
        def training_step(self, batch, batch_idx):
            if self.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().training_step(batch, batch_idx)

    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_steps=10,
        callbacks=[rq.SlurmRequeue(requeue=False)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(TermAtStep2())
    assert not trainer.received_sigterm
    assert trainer.global_step == 3
    (saved,) = rq.hpc_checkpoints(tmp_path)
    assert rq.checkpoint_step(saved) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
