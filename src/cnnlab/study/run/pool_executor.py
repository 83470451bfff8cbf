"""What the parallel executors (a local pool, Ray) share: the preflight, the order runs
go out in, and the driver's dispatch loop over their pool of workers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager

from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.driver import Driver, WorkerPool
from cnnlab.study.run.events import ListFeed, RunFeed
from cnnlab.study.run.executor import InProcessExecutor
from cnnlab.study.run.study_progress import QuietStudyProgress, StudyProgress
from cnnlab.study.store.database import Store


class PoolExecutor(ABC):
    """A base for executors whose runs train in worker processes; subclasses say how a
    session starts (``session``), where workers run (``pool``) and how many (``workers``)."""

    def __init__(self, allow_device_change: bool = False) -> None:
        self.local = InProcessExecutor(allow_device_change)  # the preflight runs here
        self.allow_device_change = allow_device_change
        self.nodes: dict[str, str] = {}  # run id -> where it trained (last attempt)

    @abstractmethod
    def session(self) -> AbstractContextManager[None]:
        """The workers' home started for the block (a Ray instance, a process pool)."""

    @abstractmethod
    def pool(self, store: Store) -> WorkerPool:
        """Where this session's workers run."""

    @abstractmethod
    def workers(self) -> int:
        """How many runs train at once."""

    def check(self, runs: Sequence[PlannedRun]) -> None:
        self.local.check(runs)

    def run_all(
        self, runs: Sequence[PlannedRun], store: Store, progress: StudyProgress | None = None
    ) -> None:
        if runs:
            self.run_feed(ListFeed(self.longest_first(runs, store)), store, progress)

    def longest_first(self, runs: Sequence[PlannedRun], store: Store) -> list[PlannedRun]:
        """The runs in the order a pool finishes soonest: most training left first (ties
        and unchecked runs in study order). In study order a study whose biggest models
        come last, like seed 004's VGG-like nets, would start them last and wait on them."""
        left = {run.run_id: self.local.work(run, store.epochs_done(run.run_id)) for run in runs}
        return sorted(runs, key=lambda run: -left[run.run_id])

    def run_feed(self, feed: RunFeed, store: Store, progress: StudyProgress | None = None) -> None:
        """Train what ``feed`` gives, as many runs at once as there are workers."""
        with self.session():
            driver = Driver(
                self.pool(store), self.workers(), feed, store, progress or QuietStudyProgress()
            )
            try:
                driver.run()
            finally:
                self.nodes.update(driver.nodes)
