"""Running a study: plan, skip what is done, run the rest, summarise.

Rerunning the same command is always safe: ``done`` runs are skipped, unfinished
ones (``pending``, or ``interrupted`` by Ctrl-C or a kill) resume from their
checkpoints, and ``failed`` ones run again only when asked (``retry_failed``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab import faults
from cnnlab.atomic import remove_stale_temporaries
from cnnlab.config.identity import slugify
from cnnlab.records import ARTIFACTS
from cnnlab.study.plan.seed_rounds import next_round
from cnnlab.study.plan.study_file import add_round
from cnnlab.study.plan.study_plan import PlannedRun, Round, Study
from cnnlab.study.run.executor import Executor, InProcessExecutor
from cnnlab.study.run.study_progress import QuietStudyProgress, StudyProgress
from cnnlab.study.store.database import DB_NAME, Store, StudyRecord
from cnnlab.study.store.lock import check_unlocked, study_lock
from cnnlab.study.store.results import StudyResults

__all__ = ["check_unlocked", "run_study", "study_lock"]


@dataclass
class StudyOutcome:
    results: StudyResults  # the current expansion's runs, as stored after this invocation
    planned: list[PlannedRun]
    skipped_done: list[str] = field(default_factory=list)  # run ids
    skipped_failed: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    study: Study | None = None  # the plan as it ended, with every round it grew by

    @property
    def failed(self) -> list[str]:
        return [r.run_id for r in self.results.runs if r.status == "failed"]


def default_out_dir(study: Study) -> Path:
    return Path("runs") / slugify(study.name)


def run_study(
    study: Study,
    out_dir: Path,
    *,
    retry_failed: bool = False,
    executor: Executor | None = None,
    progress: StudyProgress | None = None,
) -> StudyOutcome:
    """Run every planned run of ``study`` not done yet into ``out_dir``; see the module doc."""
    out_dir = Path(out_dir).absolute()
    executor = executor or InProcessExecutor()
    progress = progress or QuietStudyProgress()
    if not (out_dir / DB_NAME).exists():
        # A new study folder: a run that cannot start (missing dataset, a model that cannot
        # take the images) is refused before the folder, its lock or its database exist.
        executor.check(study.plan(out_dir))
    # A search and its confirmation share one start-up of the executor (Ray's: seconds);
    # a study without a search starts it only if some run is left to train.
    session = executor.session() if study.search is not None else contextlib.nullcontext()
    with study_lock(out_dir), Store(out_dir) as store, session:
        remove_stale_temporaries(out_dir)  # a report killed while being written
        store.interrupt_runs()  # 'running' with the lock free: the process that ran it died
        # Rounds an earlier invocation recorded (it may have been killed before their runs).
        for stored in store.recorded_rounds(study.name, study.path, study.text, study.overrides):
            study = add_round(study, Round.from_dict(stored))
        if study.search is not None and study.round_of("search") is None:
            study = search_then_plan(study, out_dir, store, executor, progress)
            record_study(store, study, study.plan(out_dir))
            faults.reached("round-recorded")
        outcome = _run_planned(study, study.plan(out_dir), store, executor, progress, retry_failed)
        while (round_ := next_round(study, outcome.results.finals_by_seed())) is not None:
            study = add_round(study, round_)
            progress.note(round_.reason)
            record_study(store, study, study.plan(out_dir))
            faults.reached("round-recorded")
            more = _run_planned(study, study.plan(out_dir), store, executor, progress, retry_failed)
            outcome.executed += more.executed  # what was done before this look stays counted
            outcome.results, outcome.planned = more.results, more.planned
        outcome.study = study
        return outcome


def _trunks_first(todo: list[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs to train, then those that start from a checkpoint one of them keeps
    (nested epochs): a run waits for its trunk only when the trunk trains now."""
    training = {r.run_id for r in todo}
    waiting = [r for r in todo if r.trunk in training]
    first = [r for r in todo if r.trunk not in training]
    return [batch for batch in (first, waiting) if batch]


def _run_planned(
    study: Study,
    planned: list[PlannedRun],
    store: Store,
    executor: Executor,
    progress: StudyProgress,
    retry_failed: bool,
) -> StudyOutcome:
    """Skip what is done (and what failed, unless retried), record the plan, run the rest."""
    statuses = store.statuses()
    outcome = StudyOutcome(results=None, planned=planned)  # type: ignore[arg-type]
    todo: list[PlannedRun] = []
    for run in planned:
        status = statuses.get(run.run_id, "pending")
        if status == "done" and not (run.run_dir / ARTIFACTS["summary"]).is_file():
            todo.append(run)  # its folder was deleted by hand: the run is trained again
        elif status == "done":
            outcome.skipped_done.append(run.run_id)
        elif status == "failed" and not retry_failed:
            outcome.skipped_failed.append(run.run_id)
        else:
            todo.append(run)
    # The executor starts before the preflight when there is work: a local pool's workers
    # import torch while the driver checks the runs.
    with executor.session() if todo else contextlib.nullcontext():
        executor.check(todo)  # before anything is written or run
        record_study(store, study, planned)
        epochs_todo = sum(
            max(0, r.config.epochs - store.epochs_done(r.run_id)) for r in todo if not r.trunk
        )  # a nested run's epochs are its trunk's
        try:
            progress.begin(len(planned), len(planned) - len(todo), epochs_todo)
            outcome.executed = [r.run_id for r in todo]
            for batch in _trunks_first(todo):
                executor.run_all(batch, store, progress)
        except BaseException:  # Ctrl-C, a full disk, Ray's node lost: the same command resumes
            with contextlib.suppress(sqlite3.Error):  # a full disk may refuse this write too
                store.interrupt_runs()
            raise
        finally:
            progress.close()
    outcome.results = store.results()
    return outcome


def record_study(
    store: Store, study: Study, planned: list[PlannedRun], extra: Sequence[PlannedRun] = ()
) -> None:
    """This invocation of ``study``, its plan and its runs in the store (``extra``: search
    trials, registered but not planned)."""
    record = StudyRecord(
        name=study.name, file_path=study.path, file_text=study.text, dataset=study.dataset,
        baseline=study.baseline, description=study.description, variants=study.variant_names,
        options=study.options, plan=study.stored(),
    )  # fmt: skip
    store.record_study(record, planned, extra)


def search_then_plan(
    study: Study, out_dir: Path, store: Store, executor: Executor, progress: StudyProgress
) -> Study:
    """Run the [search]'s trials not done yet; the plan grown by its winners' round."""
    from cnnlab.study.run.search import run_search, winners_round

    def record(trial_runs: list[PlannedRun]) -> None:
        record_study(store, study, study.plan(out_dir), trial_runs)

    trials = run_search(study, out_dir, store, executor, progress, record)
    return add_round(study, winners_round(study, trials))
