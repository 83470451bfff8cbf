"""Progress of a whole study: an overall bar (runs done / total, ETA) and the current
run's epoch bar on a terminal; one line per epoch and per finished run otherwise.

The executor asks the study progress for a per-run :class:`Reporter` (the trainer's
interface) and tells it when a run ends.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cnnlab.records import EpochRow, RunSummary
from cnnlab.study.run.study_eta import StudyEta
from cnnlab.training.reporting import QuietReporter, Reporter, format_epoch

if TYPE_CHECKING:
    from cnnlab.study.plan.study_plan import PlannedRun


class StudyProgress(Protocol):
    def begin(self, runs_total: int, runs_done: int, epochs_todo: int) -> None: ...
    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter: ...
    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def run_outcome(run: PlannedRun, summary: RunSummary | None, error: str | None) -> str:
    who = f"{run.variant} seed {run.seed}"
    if error is not None and error.startswith("pruned"):
        return f"{who}: {error}"
    if error is not None:
        return f"{who}: FAILED: {error}"
    assert summary is not None
    return f"{who}: test acc {100 * summary.final.test_acc:.2f}%"


class QuietStudyProgress:
    def begin(self, runs_total: int, runs_done: int, epochs_todo: int) -> None:
        pass

    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter:
        return QuietReporter()

    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None:
        pass

    def note(self, text: str) -> None:
        """A line between phases (a look of seeds until decided)."""

    def close(self) -> None:
        pass


def eta_text(eta: StudyEta) -> str:
    left = eta.seconds()
    return "ETA -" if left is None else f"ETA {format_duration(left)}"


class LineStudyProgress(QuietStudyProgress):
    """For logs and pipes: each epoch, then each run's outcome, on a line of its own."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stdout)
        self.total = 0
        self.finished = 0
        self.eta = StudyEta()

    def begin(self, runs_total: int, runs_done: int, epochs_todo: int) -> None:
        self.total, self.finished = runs_total, runs_done
        # Each phase (a search's trials, then its confirmation) keeps its own pace: one
        # clock and one count for both would misstate the second phase by hours.
        self.eta = StudyEta()
        self.eta.begin(runs_total - runs_done, epochs_todo)

    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter:
        self._track(run, epochs_done)
        return _LineRunReporter(self, run)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def _track(self, run: PlannedRun, epochs_done: int) -> None:
        self.eta.run_started(run.run_id, max(0, run.config.epochs - epochs_done), run.variant)

    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None:
        self.finished += 1
        self.eta.run_ended(run.run_id)
        self.console.print(
            f"run {self.finished}/{self.total} {run_outcome(run, summary, error)} "
            f"({format_duration(seconds)}; {eta_text(self.eta)})",
            highlight=False,
            soft_wrap=True,
        )


class _LineRunReporter(QuietReporter):
    def __init__(self, owner: LineStudyProgress, run: PlannedRun) -> None:
        self.owner, self.run, self.epochs = owner, run, 0

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs

    def end_epoch(self, row: EpochRow) -> None:
        self.owner.eta.epoch_ended(self.run.run_id)
        self.owner.console.print(
            f"{self.run.variant} s{self.run.seed}: {format_epoch(row, self.epochs)}",
            highlight=False,
            soft_wrap=True,
        )


class BarStudyProgress(LineStudyProgress):
    """A terminal: the overall bar, an epoch bar per run in flight, a line per finished run."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=True,
        )
        self.overall = self.progress.add_task("runs", total=1, info="", visible=False)
        self.progress.start()

    def begin(self, runs_total: int, runs_done: int, epochs_todo: int) -> None:
        super().begin(runs_total, runs_done, epochs_todo)
        self.progress.start()  # again after a phase closed it (a no-op while it runs)
        self.progress.update(
            self.overall,
            total=runs_total,
            completed=runs_done,
            visible=True,
            info=eta_text(self.eta),
        )
        self.progress.update(self.overall, description="[bold]runs")

    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter:
        self._track(run, epochs_done)
        return _BarRunReporter(self, run)

    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None:
        self.finished += 1
        self.eta.run_ended(run.run_id)
        self.progress.update(self.overall, completed=self.finished, info=eta_text(self.eta))
        self.progress.console.print(
            f"run {self.finished}/{self.total} {run_outcome(run, summary, error)} "
            f"({format_duration(seconds)})",
            highlight=False,
            soft_wrap=True,
        )

    def close(self) -> None:
        self.progress.stop()


class _BarRunReporter(QuietReporter):
    """One bar per run in flight (Ray trains several at once), removed when it ends."""

    def __init__(self, owner: BarStudyProgress, run: PlannedRun) -> None:
        self.owner, self.run = owner, run
        self.steps = 1
        self.task: Any = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        p = self.owner.progress
        self.steps = max(1, steps)
        label = f"{self.run.variant} s{self.run.seed} epoch {epoch}/{epochs}"
        if self.task is None:
            self.task = p.add_task(label, total=steps, info="")
        else:
            p.update(self.task, description=label, total=steps, completed=0, info="")

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        owner = self.owner
        owner.progress.update(
            self.task,
            completed=done,
            info=f"loss {loss:.4f} acc {acc:.2%} {images_per_s:,.0f} img/s",
        )
        owner.progress.update(owner.overall, info=eta_text(owner.eta))

    def end_epoch(self, row: EpochRow) -> None:
        self.owner.eta.epoch_ended(self.run.run_id)
        if self.task is not None:  # steps do not travel from Ray workers: the epoch is done
            acc = "" if row.test_acc is None else f"test acc {100 * row.test_acc:.2f}%"
            self.owner.progress.update(self.task, completed=self.steps, info=acc)

    def close(self) -> None:
        if self.task is not None:
            self.owner.progress.remove_task(self.task)
            self.task = None


def make_study_progress(quiet: bool, console: Console | None = None) -> StudyProgress:
    if quiet:
        return QuietStudyProgress()
    console = console or Console(file=sys.stdout)
    return BarStudyProgress(console) if console.is_terminal else LineStudyProgress(console)
