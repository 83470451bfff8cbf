"""The driver side of the Ray executor: idle workers get the next run of a feed, the
events they send go to the study's store and the progress display.

A feed (:class:`~cnnlab.study.run.events.RunFeed`) is what runs come from: a study's fixed
list, or a search that asks Optuna for the next trial when a worker is free and tells it
each trial's outcome (:class:`cnnlab.study.run.search.SearchFeed`). A feed may judge each epoch of its runs (a search's pruner):
the driver posts the verdict to a ``StopBoard`` the run's worker waits on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab import faults, heartbeat
from cnnlab.errors import CnnlabError
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.events import RunFeed
from cnnlab.study.run.study_progress import StudyProgress
from cnnlab.study.store.database import DB_NAME, Store
from cnnlab.training.reporting import Reporter

MAX_WORKER_DEATHS = 3
POLL_S = 1.0  # how often the driver drains the workers' events while runs go on


class Driver:
    """One dispatch loop over a feed, on the workers of a started Ray instance."""

    def __init__(self, owner: Any, feed: RunFeed, store: Store, progress: StudyProgress) -> None:
        from ray.util.queue import Queue

        from cnnlab.study.run.ray_worker import RunWorker, StopBoard

        self.ray, self.settings = owner.ray, owner.settings
        self.feed, self.store, self.progress = feed, store, progress
        self.by_id: dict[str, PlannedRun] = {}
        self.deaths: dict[str, int] = {}
        self.reporters: dict[str, Reporter] = {}
        self.events = Queue()
        self.board_class = self.ray.remote(num_cpus=0)(StopBoard)
        self.board: Any = None  # started for the first judged run: an idle actor costs CPU
        self.actor_class = self.ray.remote(
            num_cpus=self.settings.cpus_per_run, num_gpus=self.settings.gpus_per_run
        )(RunWorker)
        self.count = min(owner.worker_count(), feed.size())
        self.nodes = owner.nodes  # run id -> the Ray node that trained it (last attempt)
        self.node_of: dict[Any, str] = {}

    def new_workers(self, count: int) -> list[Any]:
        """Start ``count`` workers at once (each imports torch: seconds) and check that
        every one sees the study folder."""
        workers = [
            self.actor_class.remote(
                self.settings.cpus_per_run, self.events, self.settings.allow_device_change
            )
            for _ in range(count)
        ]
        db = str(Path(self.store.root) / DB_NAME)
        answers = self.ray.get(
            [w.sees.remote(db) for w in workers] + [w.node.remote() for w in workers]
        )
        for worker, missing, node in zip(workers, answers[:count], answers[count:], strict=True):
            if missing is not None:
                raise CnnlabError(
                    f"a Ray worker on {missing} cannot see the study folder {self.store.root}; "
                    "put it on a filesystem every node mounts at the same path"
                )
            self.node_of[worker] = node
        return workers

    def run(self) -> None:
        if self.count == 0:
            return
        ray = self.ray
        idle = self.new_workers(self.count)
        busy: dict[Any, tuple[Any, PlannedRun]] = {}  # task -> (worker, run)
        try:
            while True:
                while idle and (run := self.feed.next_run()) is not None:
                    self.start(run, idle.pop(), busy)
                if not busy:
                    break
                # Each poll is a remote call into the event queue's actor: on a 2-core
                # machine polling 5 times a second cost a few percent of the workers' CPU.
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=POLL_S)
                self.drain()
                for task in ready:
                    worker, run = busy.pop(task)
                    try:
                        ray.get(task)
                        idle.append(worker)
                    except ray.exceptions.RayActorError:
                        self.drain()
                        self.worker_died(run)
                        idle += self.new_workers(1)
                        continue
                    self.feed.ended(run)
        except BaseException:
            for worker, _ in busy.values():
                ray.kill(worker)  # the runner marks their runs interrupted; they resume
            raise
        finally:
            self.drain()

    def start(self, run: PlannedRun, worker: Any, busy: dict[Any, tuple[Any, PlannedRun]]) -> None:
        self.by_id[run.run_id] = run
        board = None
        if self.feed.judges(run):
            if self.board is None:
                self.board = self.board_class.remote()
            board = self.board
        task = worker.run.remote(run, self.store.epochs_done(run.run_id), board)
        busy[task] = (worker, run)
        self.nodes[run.run_id] = self.node_of[worker]
        heartbeat.doing(
            f"{len(busy)} runs training on Ray workers: "
            + ", ".join(f"{r.variant} seed {r.seed}" for _, r in busy.values())
        )

    def worker_died(self, run: PlannedRun) -> None:
        deaths = self.deaths[run.run_id] = self.deaths.get(run.run_id, 0) + 1
        reporter = self.reporters.pop(run.run_id, None)
        if reporter is not None:
            reporter.close()
        if deaths < MAX_WORKER_DEATHS:
            self.feed.again(run)  # resumes from its checkpoint on a new worker
            return
        error = f"its Ray worker died {deaths} times (killed, out of memory or node lost)"
        self.store.fail_run(run.run_id, error)
        self.progress.run_ended(run, None, error, 0.0)
        self.feed.ended(run)

    def drain(self) -> None:
        while count := self.events.qsize():
            for event in self.events.get_nowait_batch(count):
                self.apply(*event)

    def apply(self, kind: str, run_id: str, *args: Any) -> None:
        store, run = self.store, self.by_id[run_id]
        if kind == "start_run":
            store.start_run(run_id, *args)
        elif kind == "add_epoch":
            store.add_epoch(run_id, args[0])
            faults.reached("ray-driver-epoch")
            if self.feed.judges(run):
                self.board.decide.remote(run_id, args[0].epoch, self.feed.judge(run_id, args[0]))
            reporter = self.reporters.get(run_id)
            if reporter is not None:
                reporter.end_epoch(args[0])
        elif kind == "replace_epochs":
            store.replace_epochs(run_id, args[0])
        elif kind == "finish_run":
            store.finish_run(run_id, *args)
        elif kind == "fail_run":
            store.fail_run(run_id, *args)
        elif kind == "prune_run":
            store.prune_run(run_id, *args)
        elif kind == "run_started":
            self.reporters[run_id] = self.progress.run_started(run, args[0])
        elif kind == "start_epoch":
            reporter = self.reporters.get(run_id)
            if reporter is not None:
                reporter.start_epoch(*args)
        elif kind == "run_ended":
            reporter = self.reporters.pop(run_id, None)
            if reporter is not None:
                reporter.close()
            self.progress.run_ended(run, *args)
