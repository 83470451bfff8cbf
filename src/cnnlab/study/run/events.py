"""What a run tells its study while it trains, and where runs come from.

:class:`RunEvents` is the event sink a run reports to: the study's
:class:`~cnnlab.study.store.database.Store` writes the events, a remote worker forwards them to
the driver (:class:`cnnlab.study.run.ray_worker.ForwardedEvents`), and
:class:`JudgedEvents` passes them on while a feed's judge (a search's pruner) decides
after each epoch whether the run goes on. :class:`RunFeed` is what every executor
drives: a study's fixed list (:class:`ListFeed`) or a search asking for trials
(:class:`cnnlab.study.run.search.SearchFeed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from cnnlab.errors import RunPruned
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.plan.study_plan import PlannedRun


class RunEvents(Protocol):
    def epochs_done(self, run_id: str) -> int:
        """Epochs of ``run_id`` already recorded."""
        ...

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None: ...

    def add_epoch(self, run_id: str, row: EpochRow) -> None: ...

    def replace_epochs(self, run_id: str, rows: Sequence[EpochRow]) -> None:
        """The run's epoch rows are exactly ``rows`` (its checkpoint's history)."""
        ...

    def finish_run(
        self,
        run_id: str,
        summary: RunSummary,
        history: Sequence[EpochRow],
        artifacts: Mapping[str, Path],
    ) -> None: ...

    def fail_run(
        self, run_id: str, error: str, artifacts: Mapping[str, Path] | None = None
    ) -> None: ...

    def prune_run(self, run_id: str, why: str) -> None:
        """Stopped by a search's pruner: finished by decision, not failed."""
        ...


class RunFeed(Protocol):
    def size(self) -> int:
        """At most how many runs are still to come (to size a worker pool)."""
        ...

    def next_run(self) -> PlannedRun | None:
        """The next run to train, or None when there is none for now."""
        ...

    def again(self, run: PlannedRun) -> None:
        """``run``'s worker died: train it again (it resumes from its checkpoint)."""
        ...

    def judges(self, run: PlannedRun) -> bool:
        """Whether ``judge`` decides after each of ``run``'s epochs if it goes on."""
        ...

    def judge(self, run_id: str, row: EpochRow) -> str | None:
        """Why ``run_id`` stops after ``row`` (its pruner's reason), or None to go on."""
        ...

    def ended(self, run: PlannedRun) -> None:
        """``run``'s task is over (done, failed or pruned: the store says which)."""
        ...


class ListFeed:
    """A study's runs, in the order given."""

    def __init__(self, runs: Sequence[PlannedRun]) -> None:
        self.todo = list(runs)

    def size(self) -> int:
        return len(self.todo)

    def next_run(self) -> PlannedRun | None:
        return self.todo.pop(0) if self.todo else None

    def again(self, run: PlannedRun) -> None:
        self.todo.insert(0, run)

    def judges(self, run: PlannedRun) -> bool:
        return False

    def judge(self, run_id: str, row: EpochRow) -> str | None:
        return None

    def ended(self, run: PlannedRun) -> None:
        pass


class JudgedEvents:
    """``inner``'s events, with each epoch judged by ``feed`` once recorded: a run its
    judge stops ends with :class:`~cnnlab.errors.RunPruned` at that epoch."""

    def __init__(self, inner: RunEvents, feed: RunFeed) -> None:
        self.inner, self.feed = inner, feed

    def epochs_done(self, run_id: str) -> int:
        return self.inner.epochs_done(run_id)

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None:
        self.inner.start_run(run_id, device, provenance)

    def add_epoch(self, run_id: str, row: EpochRow) -> None:
        self.inner.add_epoch(run_id, row)
        why = self.feed.judge(run_id, row)
        if why is not None:
            raise RunPruned(why)

    def replace_epochs(self, run_id: str, rows: Sequence[EpochRow]) -> None:
        self.inner.replace_epochs(run_id, rows)

    def finish_run(
        self,
        run_id: str,
        summary: RunSummary,
        history: Sequence[EpochRow],
        artifacts: Mapping[str, Path],
    ) -> None:
        self.inner.finish_run(run_id, summary, history, artifacts)

    def fail_run(
        self, run_id: str, error: str, artifacts: Mapping[str, Path] | None = None
    ) -> None:
        self.inner.fail_run(run_id, error, artifacts)

    def prune_run(self, run_id: str, why: str) -> None:
        self.inner.prune_run(run_id, why)
