"""Model calls off the Qt thread: one job at a time, with progress, cancel and one error line.

Every widget action that runs a model (decoding, reconstructing the view) goes through a
:class:`JobPanel`: the work runs in a napari ``thread_worker`` and reports progress through a
queued Qt signal; *cancel* asks it to stop at its next :meth:`Job.check`. The worker's
``errored`` signal is connected when the worker is created, so superqt does not attach its
own re-raise: an error is shown once, as one notification line, and never aborts the process
(outside napari's exception hooks a re-raised worker error does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from cellvae.errors import CellvaeError
from cellvae.napari.messages import show_problem


class Cancelled(Exception):
    """Raised inside a job when the user pressed *cancel*."""


class _Signals(QObject):
    """Carries progress from the worker thread to the Qt thread (a queued signal)."""

    progress = Signal(float)


class Job:
    """What a job's function gets: report ``progress`` (0..1) and ``check`` for cancel."""

    def __init__(self, signals: _Signals) -> None:
        self._signals = signals
        self._cancel = threading.Event()

    def progress(self, fraction: float) -> None:
        """Report the fraction done (any thread); also a point where cancel is honoured."""
        self.check()
        self._signals.progress.emit(float(fraction))

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self._cancel.is_set():
            raise Cancelled

    def cancel(self) -> None:
        """Ask the job to stop at its next :meth:`check`."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancel was asked for."""
        return self._cancel.is_set()


def error_line(err: BaseException, what: str = "") -> str:
    """One line for an error: a :class:`CellvaeError`'s message, else its type and message."""
    text = str(err) if isinstance(err, CellvaeError) else f"{type(err).__name__}: {err}"
    text = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"{what}: {text}" if what else text


class JobPanel(QWidget):
    """A progress bar, a status line and a cancel button for one background job at a time.

    :meth:`run` starts ``func(job, *args)`` in a worker thread; ``on_done(result)`` runs on
    the Qt thread when it returns. Starting a job while one runs cancels nothing: the new
    request waits, and only the latest waiting request runs next (no backlog of slider
    positions).
    """

    def __init__(self, what: str = "") -> None:
        super().__init__()
        self.what = what
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.worker = None
        self.job: Job | None = None
        self._waiting: tuple | None = None
        self._signals = _Signals()
        self._signals.progress.connect(lambda f: self.bar.setValue(round(100 * f)))
        row = QHBoxLayout()
        row.addWidget(self.bar, stretch=1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    @property
    def busy(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        label: str = "working",
    ) -> None:
        """Run ``func(job, *args)`` off the Qt thread; ``on_done(result)`` on it afterwards."""
        if self.busy:
            self._waiting = (func, args, on_done, label)
            return
        from napari.qt.threading import create_worker

        self.job = Job(self._signals)
        self.bar.setValue(0)
        self.status.setText(f"{label} ...")
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(
            func,
            self.job,
            *args,
            _connect={
                "returned": lambda result: self._returned(result, on_done),
                "errored": self._errored,
                "finished": self._finished,
            },
        )

    def cancel(self) -> None:
        """Stop the running job at its next check and drop any waiting request."""
        self._waiting = None
        if self.job is not None:
            self.job.cancel()
            self.status.setText("cancelling ...")

    def _returned(self, result: Any, on_done: Callable[[Any], None]) -> None:
        self.bar.setValue(100)
        self.status.setText("")
        try:
            on_done(result)
        except CellvaeError as err:
            self._errored(err)

    def _errored(self, err: BaseException) -> None:
        if isinstance(err, Cancelled):
            self.status.setText("cancelled")
            return
        self.status.setText("")
        show_problem(error_line(err, self.what), error=True)

    def _finished(self) -> None:
        self.worker, self.job = None, None
        self.cancel_button.setEnabled(False)
        if self._waiting is not None:
            func, args, on_done, label = self._waiting
            self._waiting = None
            self.run(func, *args, on_done=on_done, label=label)
