"""A study's time left, counting its workers.

The epochs still to train are laid out on the workers as the driver hands runs out:
each run trains on one worker from start to end, the queued runs go one by one to the
worker that frees first. So two workers with one run left take that run's time, not
half of it, and three runs on two workers take two runs' time. The pace is one
worker's seconds per epoch, measured on this session's epochs (evaluation included):
a run in flight goes at its variant's own pace once one of its epochs has ended (an
MLP's epochs are over before a CNN's have begun), the rest at the mean one.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class StudyEta:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.perf_counter
        self.epochs_left = 0  # of every run not yet ended, in flight or queued
        self.runs_left = 0
        self.in_flight: dict[str, int] = {}  # run -> epochs it has left
        self.since: dict[str, float] = {}  # run -> when its current epoch began
        self.workers = 1  # the most runs seen in flight at once
        self.epoch_seconds = 0.0
        self.epochs_timed = 0
        self.variant_of: dict[str, str] = {}  # run -> its variant
        self.variant_pace: dict[str, tuple[float, int]] = {}  # variant -> (seconds, epochs)

    def begin(self, runs_left: int, epochs_left: int) -> None:
        self.runs_left, self.epochs_left = runs_left, epochs_left

    def run_started(self, run_id: str, epochs_left: int, variant: str = "") -> None:
        self.in_flight[run_id] = epochs_left
        self.variant_of[run_id] = variant
        self.since[run_id] = self.clock()
        self.workers = max(self.workers, len(self.in_flight))

    def epoch_ended(self, run_id: str) -> None:
        if run_id not in self.in_flight:
            return
        now = self.clock()
        took = now - self.since[run_id]
        self.epoch_seconds += took
        self.epochs_timed += 1
        variant = self.variant_of[run_id]
        seconds, epochs = self.variant_pace.get(variant, (0.0, 0))
        self.variant_pace[variant] = (seconds + took, epochs + 1)
        self.since[run_id] = now
        self.in_flight[run_id] -= 1
        self.epochs_left -= 1

    def run_ended(self, run_id: str) -> None:
        """An early end (failure, pruning, early stopping) leaves its other epochs undone."""
        self.epochs_left -= max(0, self.in_flight.pop(run_id, 0))
        self.since.pop(run_id, None)
        self.variant_of.pop(run_id, None)
        self.runs_left = max(0, self.runs_left - 1)

    def pace(self, run_id: str) -> float:
        seconds, epochs = self.variant_pace.get(self.variant_of.get(run_id, ""), (0.0, 0))
        return seconds / epochs if epochs else self.epoch_seconds / self.epochs_timed

    def seconds(self) -> float | None:
        """Time left, or None before the first epoch has given the pace."""
        if not self.epochs_timed:
            return None
        pace, now = self.epoch_seconds / self.epochs_timed, self.clock()
        loads = [
            max(0.0, left * self.pace(run) - (now - self.since[run]))
            for run, left in self.in_flight.items()
        ]
        loads += [0.0] * (self.workers - len(loads))
        queued = max(0, self.runs_left - len(self.in_flight))
        if queued:
            queued_epochs = max(0, self.epochs_left - sum(self.in_flight.values()))
            heapq.heapify(loads)
            for _ in range(queued):
                heapq.heappush(loads, heapq.heappop(loads) + queued_epochs / queued * pace)
        return max(loads, default=0.0)
