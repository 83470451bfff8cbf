"""The driver of every parallel executor: idle workers get the next run of a feed, the
events they send go to the study's store and the progress display.

A feed (:class:`~cnnlab.study.run.events.RunFeed`) is what runs come from: a study's
fixed list, or a search that asks Optuna for the next trial when a worker is free and
tells it each trial's outcome (:class:`cnnlab.study.run.search.SearchFeed`). A feed may
judge each epoch of its runs (a search's pruner): the driver sends the verdict to the
run's worker, which waits for it. Where workers run is a :class:`WorkerPool`'s business
(local processes, Ray actors); the dispatch, the store and the faults are the same.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from cnnlab import faults, heartbeat
from cnnlab.errors import CnnlabError, MachineRefused
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.events import RunFeed
from cnnlab.study.run.study_progress import StudyProgress
from cnnlab.study.store.database import Store
from cnnlab.training.reporting import Reporter

MAX_WORKER_DEATHS = 3
POLL_S = 1.0  # how often the driver drains the workers' events while runs go on


class WorkerPool(Protocol):
    """Workers somewhere: each trains one run at a time and sends its events back."""

    def start(self, count: int, replacing: bool = False) -> list[Any]:
        """``count`` workers (a new one imports torch: seconds); their handles. Workers
        ``replacing`` dead ones are new: the idle ones are the driver's already."""
        ...

    def submit(self, worker: Any, run: PlannedRun, epochs_done: int, judged: bool) -> None:
        """Have ``worker`` train ``run``; a ``judged`` one waits for a verdict each epoch."""
        ...

    def wait(self, timeout: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, bool]]]:
        """The events workers sent (each the RunEvents call and its arguments), and the
        workers whose run is over since the last call, each with whether it died."""
        ...

    def decide(self, worker: Any, run_id: str, epoch: int, why: str | None) -> None:
        """Tell a judged run's worker whether it goes on after ``epoch`` (``why`` it stops)."""
        ...

    def where(self, worker: Any) -> str:
        """Where ``worker`` runs (a Ray node id; this machine for a local pool)."""
        ...

    def stop(self, worker: Any) -> None:
        """End ``worker`` now (its run is resumed later from its checkpoint)."""
        ...


class Driver:
    """One dispatch loop over a feed, on ``count`` workers of ``pool``."""

    def __init__(
        self, pool: WorkerPool, count: int, feed: RunFeed, store: Store, progress: StudyProgress
    ) -> None:
        self.pool, self.feed, self.store, self.progress = pool, feed, store, progress
        self.count = min(count, feed.size())
        self.by_id: dict[str, PlannedRun] = {}
        self.worker_of: dict[str, Any] = {}  # run id -> the worker training it
        self.deaths: dict[str, int] = {}
        self.reporters: dict[str, Reporter] = {}
        self.nodes: dict[str, str] = {}  # run id -> where it trained (last attempt)

    def run(self) -> None:
        if self.count <= 0:
            return
        idle = self.pool.start(self.count)
        busy: dict[Any, PlannedRun] = {}  # worker -> its run
        try:
            while True:
                while idle and (run := self.feed.next_run()) is not None:
                    self.start(run, idle.pop(), busy)
                if not busy:
                    break
                events, ended = self.pool.wait(POLL_S)
                for event in events:
                    self.apply(*event)
                for worker, died in ended:
                    run = busy.pop(worker)
                    say_busy(busy)
                    if died:
                        self.worker_died(run)
                        idle += self.pool.start(1, replacing=True)
                    else:
                        idle.append(worker)
                        self.feed.ended(run)
        except BaseException:
            for worker in busy:
                self.pool.stop(worker)  # the runner marks their runs interrupted; they resume
            self.drain()
            raise

    def drain(self) -> None:
        """Record what the stopped workers sent before they stopped (an epoch, a finish):
        best effort, while the study stops for another reason."""
        with contextlib.suppress(Exception):
            events, _ = self.pool.wait(0.0)
            for event in events:
                self.apply(*event)

    def start(self, run: PlannedRun, worker: Any, busy: dict[Any, PlannedRun]) -> None:
        self.by_id[run.run_id] = run
        self.worker_of[run.run_id] = worker
        self.pool.submit(worker, run, self.store.epochs_done(run.run_id), self.feed.judges(run))
        busy[worker] = run
        self.nodes[run.run_id] = self.pool.where(worker)
        say_busy(busy)

    def worker_died(self, run: PlannedRun) -> None:
        deaths = self.deaths[run.run_id] = self.deaths.get(run.run_id, 0) + 1
        reporter = self.reporters.pop(run.run_id, None)
        if reporter is not None:
            reporter.close()
        if deaths < MAX_WORKER_DEATHS:
            self.feed.again(run)  # resumes from its checkpoint on a new worker
            return
        error = f"its worker died {deaths} times (killed, out of memory or node lost)"
        self.store.fail_run(run.run_id, error)
        self.progress.run_ended(run, None, error, 0.0)
        self.feed.ended(run)

    def apply(self, kind: str, run_id: str, *args: Any) -> None:
        """One event a worker sent: the store's record, the display's line, a verdict."""
        store, run = self.store, self.by_id[run_id]
        if kind == "task_error":  # the worker could not take the run, or the disk is full
            exit_code = args[1] if len(args) > 1 else 2
            raise (MachineRefused if exit_code == MachineRefused.exit_code else CnnlabError)(
                args[0]
            )
        if kind == "add_epoch":
            store.add_epoch(run_id, args[0])
            faults.reached("driver-epoch")
            if self.feed.judges(run):
                why = self.feed.judge(run_id, args[0])
                self.pool.decide(self.worker_of[run_id], run_id, args[0].epoch, why)
            if (reporter := self.reporters.get(run_id)) is not None:
                reporter.end_epoch(args[0])
        elif kind in ("start_run", "replace_epochs", "finish_run", "fail_run", "prune_run"):
            getattr(store, kind)(run_id, *args)
        elif kind == "run_started":
            self.reporters[run_id] = self.progress.run_started(run, args[0])
        elif kind == "start_epoch":
            if (reporter := self.reporters.get(run_id)) is not None:
                reporter.start_epoch(*args)
        elif kind == "run_ended":
            if (reporter := self.reporters.pop(run_id, None)) is not None:
                reporter.close()
            self.progress.run_ended(run, *args)


def say_busy(busy: dict[Any, PlannedRun]) -> None:
    """What the heartbeat says while no line comes: the runs in flight now."""
    runs = ", ".join(f"{r.variant} seed {r.seed}" for r in busy.values())
    heartbeat.doing(f"{len(busy)} run(s) training in worker processes: {runs}" if busy else
                    "no run training in worker processes")  # fmt: skip
