"""The worker side of the Ray executor: a long-lived actor that trains one run at a time
with the in-process executor's code and sends what the store and the progress display
need to the driver through a Ray queue (workers never open the study database)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, RunPruned
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.executor import InProcessExecutor
from cnnlab.study.run.study_progress import QuietStudyProgress
from cnnlab.training.reporting import Reporter

WORKER_LOCK = ".worker.lock"
VERDICT_WAIT_S = 3600.0  # the driver answers within its event poll; this only ends a hang


class ForwardedEvents:
    """A run's events, sent to the driver instead of a store (in the worker). A search
    trial's run (``board`` given) waits after each epoch for the driver's pruner to say
    whether it goes on, so a trial stops at the epoch its pruner judged, as in-process."""

    def __init__(self, events: Any, epochs_done: int, board: Any = None) -> None:
        self.events, self.done, self.board = events, epochs_done, board

    def epochs_done(self, run_id: str) -> int:
        return self.done

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None:
        self.events.put(("start_run", run_id, device, provenance))

    def add_epoch(self, run_id: str, row: EpochRow) -> None:
        self.events.put(("add_epoch", run_id, row))
        if self.board is not None:
            import ray

            why = ray.get(self.board.verdict.remote(run_id, row.epoch), timeout=VERDICT_WAIT_S)
            if why is not None:
                raise RunPruned(why)

    def replace_epochs(self, run_id: str, rows: Sequence[EpochRow]) -> None:
        self.events.put(("replace_epochs", run_id, list(rows)))

    def finish_run(self, run_id: str, summary: RunSummary, history: Any, artifacts: Any) -> None:
        self.events.put(("finish_run", run_id, summary, list(history), dict(artifacts)))

    def fail_run(self, run_id: str, error: str, artifacts: Any = None) -> None:
        self.events.put(("fail_run", run_id, error, dict(artifacts or {})))

    def prune_run(self, run_id: str, why: str) -> None:
        self.events.put(("prune_run", run_id, why))


class _EventProgress(QuietStudyProgress):
    """The run's progress, sent to the driver's display (in the worker)."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def run_started(self, run: PlannedRun, epochs_done: int) -> Reporter:
        self.events.put(("run_started", run.run_id, epochs_done))
        return _EventReporter(self.events, run.run_id)

    def run_ended(
        self, run: PlannedRun, summary: RunSummary | None, error: str | None, seconds: float
    ) -> None:
        self.events.put(("run_ended", run.run_id, summary, error, seconds))


class _EventReporter:
    def __init__(self, events: Any, run_id: str) -> None:
        self.events, self.run_id = events, run_id

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.events.put(("start_epoch", self.run_id, epoch, epochs, steps))

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        pass  # per-step traffic would cost more than it shows; epochs arrive as they end

    def end_epoch(self, row: EpochRow) -> None:
        pass  # the store event carries the row; the driver forwards it to the display

    def close(self) -> None:
        pass


class RunWorker:
    """A Ray actor: keeps torch imported and the datasets loaded across its runs."""

    def __init__(self, threads: int, events: Any, allow_device_change: bool = False) -> None:
        import torch

        torch.set_num_threads(threads)
        self.events = events
        self.inner = InProcessExecutor(allow_device_change)

    def sees(self, path: str) -> str | None:
        """None when ``path`` exists here, else this node's address (for the error)."""
        import ray

        return None if Path(path).exists() else ray.util.get_node_ip_address()

    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, run: PlannedRun, epochs_done: int, board: Any = None) -> bool:
        events = ForwardedEvents(self.events, epochs_done, board)
        with run_folder_lock(run.run_dir):
            return self.inner.run_one(run, events, _EventProgress(self.events))


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
                        f"{wait_s:.0f} s; stop it (ray stop) and run again"
                    ) from None
                time.sleep(0.5)
        yield


class StopBoard:
    """A Ray actor (async): the driver's pruning verdict on each epoch of a search trial,
    which the trial's worker waits for before it trains the next epoch."""

    def __init__(self) -> None:
        self.verdicts: dict[tuple[str, int], str | None] = {}
        self.posted: dict[tuple[str, int], asyncio.Event] = {}

    async def verdict(self, run_id: str, epoch: int) -> str | None:
        key = (run_id, epoch)
        await self.posted.setdefault(key, asyncio.Event()).wait()
        self.posted.pop(key, None)
        return self.verdicts.pop(key)

    async def decide(self, run_id: str, epoch: int, why: str | None) -> None:
        key = (run_id, epoch)
        self.verdicts[key] = why
        self.posted.setdefault(key, asyncio.Event()).set()
