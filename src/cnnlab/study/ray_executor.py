"""Runs of a study in parallel on Ray: one machine's cores, several GPUs, or a cluster.

The driver (the `cnnlab run` process) owns the study database; workers never open
it. Each worker is a long-lived Ray actor that trains one run at a time with the
in-process executor's code (so a run trains the same wherever it runs) and sends
everything the store and the progress display need through a Ray queue, as it
happens: the driver writes each epoch row when it arrives, so `cnnlab report` and
the display work while runs are going.

Run folders: the study folder must be one that every node sees at the same path
(a local instance always does; on a cluster, a shared filesystem mounted alike on
every machine, the usual set-up). Workers write the run folders there directly; a
worker that cannot see the study's database stops the study with one line.

Faults: a run that fails for a reason of its own (it diverged, a bad setting) is
recorded as failed once; a worker that dies (killed, its node lost) is replaced
and its run resumed from its checkpoint, at most ``MAX_WORKER_DEATHS`` times per
run; a driver that dies leaves its runs interrupted, and the same command resumes
them from their last finished epoch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab import faults, heartbeat
from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.executor import InProcessExecutor
from cnnlab.study.progress import QuietStudyProgress, StudyProgress
from cnnlab.study.spec import PlannedRun
from cnnlab.study.store import DB_NAME, Store
from cnnlab.training.progress import Reporter

MAX_WORKER_DEATHS = 3
WORKER_LOCK = ".worker.lock"
INSTALL_HINT = "Ray is not installed: pip install 'cnnlab[ray]' (or pip install ray)"


def import_ray() -> Any:
    """Ray, set up to stay on this machine's loopback and report nothing home."""
    # Without the first, a single-machine instance binds the interface address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise CnnlabError(f"--executor ray: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: start a local instance for this command
    workers: int | None = None  # runs at once (default: what the resources allow)
    cpus_per_run: int = 1  # torch threads of each run
    gpus_per_run: float = 0.0  # 0.25 packs four runs on one GPU
    allow_device_change: bool = False  # resume runs begun on another kind of device


class _EventStore:
    """What a run calls on the store, sent to the driver instead (in the worker)."""

    def __init__(self, events: Any, epochs_done: int) -> None:
        self.events, self.done = events, epochs_done

    def epochs_done(self, run_id: str) -> int:
        return self.done

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None:
        self.events.put(("start_run", run_id, device, provenance))

    def add_epoch(self, run_id: str, row: EpochRow) -> None:
        self.events.put(("add_epoch", run_id, row))

    def replace_epochs(self, run_id: str, rows: Sequence[EpochRow]) -> None:
        self.events.put(("replace_epochs", run_id, list(rows)))

    def finish_run(self, run_id: str, summary: RunSummary, history: Any, artifacts: Any) -> None:
        self.events.put(("finish_run", run_id, summary, list(history), dict(artifacts)))

    def fail_run(self, run_id: str, error: str, artifacts: Any = None) -> None:
        self.events.put(("fail_run", run_id, error, dict(artifacts or {})))


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

    def run(self, run: PlannedRun, epochs_done: int) -> bool:
        store = _EventStore(self.events, epochs_done)
        with run_folder_lock(run.run_dir):
            return self.inner.run_one(run, store, _EventProgress(self.events))  # type: ignore[arg-type]


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


class RayExecutor:
    """Runs a study's runs as tasks on Ray actors; the driver records what they send."""

    def __init__(self, settings: RaySettings | None = None) -> None:
        self.settings = settings or RaySettings()
        self.local = InProcessExecutor()  # the preflight runs here, in the driver
        self.ray = import_ray()
        self.nodes: dict[str, str] = {}

    def check(self, runs: Sequence[PlannedRun]) -> None:
        if not self.settings.gpus_per_run:
            # Ray hides every GPU from a task that asked for none: such a run cannot use one.
            for run in runs:
                if run.config.device.startswith("cuda"):
                    raise CnnlabError(
                        f"variant '{run.variant}' asks for device {run.config.device}, but a Ray "
                        "run gets a GPU only with --gpus-per-run (e.g. 1, or 0.25 for four runs "
                        "per GPU)"
                    )
        self.local.check(runs)

    def run_all(
        self, runs: Sequence[PlannedRun], store: Store, progress: StudyProgress | None = None
    ) -> None:
        if not runs:
            return
        progress = progress or QuietStudyProgress()
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            self._start()
        try:
            _Driver(self, runs, store, progress).run()
        finally:
            if started_here:
                ray.shutdown()

    def _start(self) -> None:
        s = self.settings
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "configure_logging": False,
            "log_to_driver": False,
        }
        if s.address:
            kwargs["address"] = s.address
        else:
            # "local": a new instance even when `ray start` left one running on this machine
            # (without it ray.init joins that one, whatever its size).
            kwargs["address"] = "local"
            workers = s.workers or max(1, (os.cpu_count() or 1) // s.cpus_per_run)
            kwargs["num_cpus"] = workers * s.cpus_per_run
            kwargs["num_gpus"] = None if s.gpus_per_run else 0
        try:
            self.ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the cluster at {s.address}" if s.address else "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CnnlabError(f"cannot start or join {where}: {first}") from None

    def worker_count(self) -> int:
        s = self.settings
        if s.workers:
            return s.workers
        total = self.ray.cluster_resources()
        by_cpu = int(total.get("CPU", 1) // s.cpus_per_run)
        by_gpu = int(total.get("GPU", 0) // s.gpus_per_run) if s.gpus_per_run else by_cpu
        return max(1, min(by_cpu, by_gpu))


class _Driver:
    """One study's dispatch loop: idle workers get the next run; events go to the store."""

    def __init__(
        self, owner: RayExecutor, runs: Sequence[PlannedRun], store: Store, progress: StudyProgress
    ) -> None:
        from ray.util.queue import Queue

        self.ray, self.settings = owner.ray, owner.settings
        self.store, self.progress = store, progress
        self.todo = list(runs)
        self.by_id = {r.run_id: r for r in runs}
        self.deaths: dict[str, int] = {}
        self.reporters: dict[str, Reporter] = {}
        self.epochs: dict[str, int] = {}
        self.events = Queue()
        self.actor_class = self.ray.remote(
            num_cpus=self.settings.cpus_per_run, num_gpus=self.settings.gpus_per_run
        )(RunWorker)
        self.count = min(owner.worker_count(), len(self.todo))
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
        ray = self.ray
        idle = self.new_workers(self.count)
        busy: dict[Any, tuple[Any, PlannedRun]] = {}  # task -> (worker, run)
        try:
            while self.todo or busy:
                while idle and self.todo:
                    run = self.todo.pop(0)
                    worker = idle.pop()
                    task = worker.run.remote(run, self.store.epochs_done(run.run_id))
                    busy[task] = (worker, run)
                    self.nodes[run.run_id] = self.node_of[worker]
                    heartbeat.doing(
                        f"{len(busy)} runs training on Ray workers: "
                        + ", ".join(f"{r.variant} seed {r.seed}" for _, r in busy.values())
                    )
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=0.2)
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
        except BaseException:
            for worker, _ in busy.values():
                ray.kill(worker)  # the runner marks their runs interrupted; they resume
            raise
        finally:
            self.drain()

    def worker_died(self, run: PlannedRun) -> None:
        deaths = self.deaths[run.run_id] = self.deaths.get(run.run_id, 0) + 1
        reporter = self.reporters.pop(run.run_id, None)
        if reporter is not None:
            reporter.close()
        if deaths < MAX_WORKER_DEATHS:
            self.todo.insert(0, run)  # resumes from its checkpoint on a new worker
            return
        error = f"its Ray worker died {deaths} times (killed, out of memory or node lost)"
        self.store.fail_run(run.run_id, error)
        self.progress.run_ended(run, None, error, 0.0)

    def drain(self) -> None:
        while not self.events.empty():
            self.apply(*self.events.get())

    def apply(self, kind: str, run_id: str, *args: Any) -> None:
        store, run = self.store, self.by_id[run_id]
        if kind == "start_run":
            store.start_run(run_id, *args)
        elif kind == "add_epoch":
            store.add_epoch(run_id, args[0])
            faults.reached("ray-driver-epoch")
            reporter = self.reporters.get(run_id)
            if reporter is not None:
                reporter.end_epoch(args[0])
        elif kind == "replace_epochs":
            store.replace_epochs(run_id, args[0])
        elif kind == "finish_run":
            store.finish_run(run_id, *args)
        elif kind == "fail_run":
            store.fail_run(run_id, *args)
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
