"""The worker side of every parallel executor: one implementation, several transports.

A worker is a long-lived process (a local pool's child, a Ray actor) that keeps torch
imported and its datasets loaded across runs, trains one run at a time with the
in-process executor's code (so a run trains the same wherever it runs), and sends what
the store and the progress display need to the driver, which alone writes the study
database. How the events travel (a pipe, a Ray queue) is the transport's ``send``; a
search trial's worker waits after each epoch for the driver's pruning ``verdict``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, RunPruned
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.executor import InProcessExecutor
from cnnlab.study.run.study_progress import QuietStudyProgress
from cnnlab.training.reporting import Reporter

WORKER_LOCK = ".worker.lock"
Send = Callable[[tuple[Any, ...]], None]
Verdict = Callable[[str, int], "str | None"]  # (run id, epoch) -> why it stops, or None


class ForwardedEvents:
    """A run's events, sent to the driver instead of a store (in the worker). A judged
    run (``verdict`` given) waits after each epoch for the driver's pruner to say whether
    it goes on, so a trial stops at the epoch its pruner judged, as in process."""

    def __init__(self, send: Send, epochs_done: int, verdict: Verdict | None = None) -> None:
        self.send, self.done, self.verdict = send, epochs_done, verdict

    def epochs_done(self, run_id: str) -> int:
        return self.done

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None:
        self.send(("start_run", run_id, device, provenance))

    def add_epoch(self, run_id: str, row: EpochRow) -> None:
        self.send(("add_epoch", run_id, row))
        if self.verdict is not None and (why := self.verdict(run_id, row.epoch)) is not None:
            raise RunPruned(why)

    def replace_epochs(self, run_id: str, rows: Sequence[EpochRow]) -> None:
        self.send(("replace_epochs", run_id, list(rows)))

    def finish_run(
        self,
        run_id: str,
        summary: RunSummary,
        history: Sequence[EpochRow],
        artifacts: Mapping[str, Path],
    ) -> None:
        self.send(("finish_run", run_id, summary, list(history), dict(artifacts)))

    def fail_run(
        self, run_id: str, error: str, artifacts: Mapping[str, Path] | None = None
    ) -> None:
        self.send(("fail_run", run_id, error, dict(artifacts or {})))

    def prune_run(self, run_id: str, why: str) -> None:
        self.send(("prune_run", run_id, why))


class _ForwardedProgress(QuietStudyProgress):
    """The run's progress, sent to the driver's display (in the worker)."""

    def __init__(self, send: Send) -> None:
        self.send = send

    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter:
        self.send(("run_started", run.run_id, epochs_done))
        return _ForwardedReporter(self.send, run.run_id)

    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None:
        self.send(("run_ended", run.run_id, summary, error, seconds))


class _ForwardedReporter:
    def __init__(self, send: Send, run_id: str) -> None:
        self.send, self.run_id = send, run_id

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.send(("start_epoch", self.run_id, epoch, epochs, steps))

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        pass  # per-step traffic would cost more than it shows; epochs arrive as they end

    def end_epoch(self, row: EpochRow) -> None:
        pass  # the store event carries the row; the driver forwards it to the display

    def close(self) -> None:
        pass


class RunWorker:
    """Trains the runs it is given, one at a time, with ``threads`` torch threads."""

    def __init__(self, threads: int, send: Send, allow_device_change: bool = False) -> None:
        import torch

        torch.set_num_threads(threads)
        self.send = send
        self.inner = InProcessExecutor(allow_device_change)

    def run(self, run: PlannedRun, epochs_done: int, verdict: Verdict | None = None) -> bool:
        """Train ``run`` (resuming from its checkpoint); True when it finished."""
        events = ForwardedEvents(self.send, epochs_done, verdict)
        with run_folder_lock(run.run_dir):
            return self.inner.run_one(run, events, _ForwardedProgress(self.send))


@contextlib.contextmanager
def run_folder_lock(run_dir: Path, wait_s: float = 120.0) -> Iterator[None]:
    """Hold the run folder for one worker at a time. A worker whose driver was killed
    trains on for a few seconds before it notices; the run's next worker waits for it
    to be gone (the OS drops the lock with the process) instead of writing alongside."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / WORKER_LOCK, "a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CnnlabError(
                        f"{run_dir} is still being written by another worker after "
                        f"{wait_s:.0f} s; stop it and run again"
                    ) from None
                time.sleep(0.5)
        yield
