"""The study progress display with runs that overlap (worker processes train several at once)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from cnnlab.records import EpochRow
from cnnlab.study.run.study_eta import StudyEta
from cnnlab.study.run.study_progress import BarStudyProgress, LineStudyProgress, eta_text


def planned(run_id: str, epochs: int) -> SimpleNamespace:
    return SimpleNamespace(
        run_id=run_id, variant=run_id, seed=0, config=SimpleNamespace(epochs=epochs)
    )


def row(epoch: int) -> EpochRow:
    return EpochRow(
        epoch=epoch, lr=0.1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5,
        images_per_s=100.0, epoch_seconds=1.0,
    )  # fmt: skip


def test_overlapping_runs_each_keep_their_own_count_of_epochs_left():
    out = io.StringIO()
    progress = LineStudyProgress(Console(file=out, width=200))
    a, b = planned("a", 3), planned("b", 4)
    progress.begin(runs_total=2, runs_done=0, epochs_todo=7)
    ra, rb = progress.run_started(a, 0), progress.run_started(b, 0)
    for reporter, epoch in ((ra, 1), (rb, 1), (ra, 2), (rb, 2)):
        reporter.start_epoch(epoch, 3, 10)
        reporter.end_epoch(row(epoch))
    progress.run_ended(a, None, "diverged", 1.0)  # a stops one epoch early
    assert progress.eta.epochs_left == 2 and progress.eta.in_flight == {"b": 2}
    rb.end_epoch(row(3))
    rb.end_epoch(row(4))
    progress.run_ended(b, None, "stopped", 1.0)
    assert progress.eta.epochs_left == 0 and progress.eta.seconds() == 0
    assert "a s0: epoch 2/3" in out.getvalue() and "run 2/2 b" in out.getvalue()


def two_runs_in_flight() -> tuple[BarStudyProgress, Any, Any]:
    """A terminal's display with runs a and b each in their first epoch."""
    progress = BarStudyProgress(Console(file=io.StringIO(), width=200, force_terminal=True))
    progress.begin(runs_total=2, runs_done=0, epochs_todo=4)
    ra = progress.run_started(planned("a", 2), 0)
    rb = progress.run_started(planned("b", 2), 0)
    ra.start_epoch(1, 2, 10)
    rb.start_epoch(1, 2, 10)
    return progress, ra, rb


def test_the_bar_display_shows_a_bar_per_run_in_flight():
    progress, ra, _rb = two_runs_in_flight()
    try:
        shown = [t.description for t in progress.progress.tasks if t.visible]
        assert shown == ["[bold]runs", "a s0 epoch 1/2", "b s0 epoch 1/2"]
        ra.close()
        assert [t.description for t in progress.progress.tasks][1:] == ["b s0 epoch 1/2"]
    finally:
        progress.close()


def test_a_second_phase_keeps_its_own_pace(monkeypatch):
    # A search (trials pruned early), then its confirmation: the ETA of the second phase
    # comes from the second phase's epochs and clock alone.
    now = [0.0]
    monkeypatch.setattr("cnnlab.study.run.study_eta.time.perf_counter", lambda: now[0])
    progress = LineStudyProgress(Console(file=io.StringIO(), width=200))
    progress.begin(runs_total=2, runs_done=0, epochs_todo=4)  # clock 0: the search starts
    for name in ("t0", "t1"):
        trial = planned(name, 2)
        reporter = progress.run_started(trial, 0)
        reporter.start_epoch(1, 2, 10)
        reporter.end_epoch(row(1))
        progress.run_ended(trial, None, "pruned", 50.0)  # each pruned after 1 of 2 epochs
    assert progress.eta.epochs_left == 0
    now[0] = 100.0
    progress.begin(runs_total=2, runs_done=0, epochs_todo=4)  # the confirmation starts
    first = planned("c0", 2)
    reporter = progress.run_started(first, 0)
    reporter.start_epoch(1, 2, 10)
    now[0] = 110.0
    reporter.end_epoch(row(1))
    assert eta_text(progress.eta) == "ETA 30s"  # 10 s an epoch, 3 epochs left


def test_the_eta_lays_the_runs_left_out_on_the_workers():
    # Two workers, three runs of two 10-second epochs: a run trains on one worker, so the
    # third starts when one of the first two ends, and ends alone.
    now = [0.0]
    eta = StudyEta(clock=lambda: now[0])
    eta.begin(runs_left=3, epochs_left=6)
    assert eta.seconds() is None  # no pace yet
    eta.run_started("a", 2)
    eta.run_started("b", 2)
    now[0] = 10.0
    eta.epoch_ended("a")
    eta.epoch_ended("b")
    assert eta.seconds() == 30.0  # (not 4 epochs at 2 per 10 s: 20 s)
    now[0] = 15.0
    assert eta.seconds() == 25.0  # half way through the epochs in flight
    now[0] = 20.0
    for run in ("a", "b"):
        eta.epoch_ended(run)
        eta.run_ended(run)
    eta.run_started("c", 2)
    assert eta.seconds() == 20.0  # one run left: its two epochs, the other worker idle
    # Three workers, five runs: a's epochs outlast b and c with the two queued after them.
    now[0] = 0.0
    eta = StudyEta(clock=lambda: now[0])
    eta.begin(runs_left=5, epochs_left=12)
    for run, epochs in (("a", 4), ("b", 2), ("c", 2)):
        eta.run_started(run, epochs)
    now[0] = 30.0
    eta.epoch_ended("a")  # 30 s an epoch
    assert eta.seconds() == 3 * 30  # b and c end in 30 s, the queued two 60 s after


def test_a_run_in_flight_goes_at_its_own_variants_pace():
    # An MLP's 1-second epochs and a CNN's 10-second ones: the CNN's last epochs are not
    # timed at the mean of both.
    now = [0.0]
    eta = StudyEta(clock=lambda: now[0])
    eta.begin(runs_left=2, epochs_left=4)
    eta.run_started("mlp", 2, "MLP")
    eta.run_started("cnn", 2, "CNN")
    now[0] = 1.0
    eta.epoch_ended("mlp")
    now[0] = 2.0
    eta.epoch_ended("mlp")
    eta.run_ended("mlp")
    assert eta.seconds() == 0.0  # the CNN at the mean pace (1 s) is 2 s into its 2 epochs
    now[0] = 10.0
    eta.epoch_ended("cnn")
    assert eta.seconds() == 10.0  # its own pace: one 10-second epoch left
