"""A SLURM warning signal that arrives after ``cellvae fit`` has returned must not kill it.

Seen on the real one-node cluster: a requeued fit reached ``max_steps``, and the pre-limit
SIGUSR1 came while Python was shutting down (when it puts back the default action, terminate,
for signals it handled), so a finished job failed and Snakemake retried it.
"""

from __future__ import annotations

import signal

import pytest

from cellvae.cli.lightning import run_lightning


@pytest.fixture
def saved_usr1():
    """The test process's own handlers back afterwards (fit notes SIGUSR1 and SIGTERM)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM)}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_after_fit_returns_in_a_slurm_job_the_warning_signal_is_ignored(
    monkeypatch, saved_usr1, capsys
):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.delenv("CELLVAE_EARLY_SIGNAL", raising=False)
    code = run_lightning("fit", ["--no_such_option=1"])  # returns at once: a usage error
    assert code == 2
    # SIG_IGN is the kernel's, not a Python handler: it outlives the interpreter's shutdown
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN


def test_outside_slurm_fit_leaves_the_signal_alone(monkeypatch, saved_usr1, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    run_lightning("fit", ["--no_such_option=1"])
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
