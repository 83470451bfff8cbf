"""The Ray transport of the driver's workers: long-lived actors (one run at a time each),
their events through a Ray queue, a judged run's verdicts through a :class:`StopBoard`.

Run folders: the study folder must be one that every node sees at the same path (a
local instance always does; on a cluster, a shared filesystem mounted alike on every
machine, the usual set-up). A worker that cannot see the study's database stops the
study with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.store.sqlite_schema import DB_NAME


class RayPool:
    def __init__(
        self, ray: Any, study_dir: Path, threads: int, gpus: float, allow_device_change: bool
    ) -> None:
        from ray.util.queue import Queue

        from cnnlab.study.run.ray_worker import RayRunWorker, StopBoard

        self.ray, self.study_dir = ray, study_dir
        self.threads, self.allow_device_change = threads, allow_device_change
        self.events = Queue()
        self.board_class = ray.remote(num_cpus=0)(StopBoard)
        self.board: Any = None  # started for the first judged run: an idle actor costs CPU
        self.actor_class = ray.remote(num_cpus=threads, num_gpus=gpus)(RayRunWorker)
        self.tasks: dict[Any, Any] = {}  # task -> worker
        self.nodes: dict[Any, str] = {}  # worker -> its node

    def start(self, count: int, replacing: bool = False) -> list[Any]:
        """Start ``count`` new actors at once (each imports torch: seconds) and check that
        every one sees the study folder."""
        workers = [
            self.actor_class.remote(self.threads, self.events, self.allow_device_change)
            for _ in range(count)
        ]
        db = str(self.study_dir / DB_NAME)
        answers = self.ray.get(
            [w.sees.remote(db) for w in workers] + [w.node.remote() for w in workers]
        )
        for worker, missing, node in zip(workers, answers[:count], answers[count:], strict=True):
            if missing is not None:
                raise CnnlabError(
                    f"a Ray worker on {missing} cannot see the study folder {self.study_dir}; "
                    "put it on a filesystem every node mounts at the same path"
                )
            self.nodes[worker] = node
        return workers

    def submit(self, worker: Any, run: PlannedRun, epochs_done: int, judged: bool) -> None:
        if judged and self.board is None:
            self.board = self.board_class.remote()
        self.tasks[worker.run.remote(run, epochs_done, self.board if judged else None)] = worker

    def wait(self, timeout: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, bool]]]:
        # Each poll is a remote call into the event queue's actor: on a 2-core machine
        # polling 5 times a second cost a few percent of the workers' CPU.
        ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=timeout)
        ended = []
        for task in ready:
            worker = self.tasks.pop(task)
            try:
                self.ray.get(task)
                ended.append((worker, False))
            except self.ray.exceptions.RayActorError:
                ended.append((worker, True))
        # Drained after the tasks are collected: a finished task's events are all queued.
        events = []
        while count := self.events.qsize():
            events += self.events.get_nowait_batch(count)
        return events, ended

    def decide(self, worker: Any, run_id: str, epoch: int, why: str | None) -> None:
        self.board.decide.remote(run_id, epoch, why)

    def where(self, worker: Any) -> str:
        return self.nodes[worker]

    def stop(self, worker: Any) -> None:
        self.ray.kill(worker)
