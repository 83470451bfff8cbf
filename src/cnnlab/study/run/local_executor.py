"""Runs of a study side by side in worker processes on this machine: the default.

Small CNNs use a second thread poorly, so on a CPU two one-thread runs at once finish a
study much sooner than one two-thread run after another (``benchmarks/study_throughput.py``
measures it); on a GPU one small run leaves most of the device idle. ``auto`` therefore
runs one worker per core at one thread each, or two workers per GPU. A run's numbers
depend only on its settings and its thread count, never on which worker trained it or
how many there were, so a study can be started with one executor and finished with
another.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.local_pool import LocalPool
from cnnlab.study.run.pool_executor import PoolExecutor
from cnnlab.study.store.database import Store

RUNS_PER_GPU = 2  # not yet measured on a GPU: two small runs hide each other's gaps


def cores() -> int:
    """The CPU cores this process may use (a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class Layout:
    """How a study's runs share the machine: ``workers`` at once, ``threads`` torch
    threads each, spread over ``gpus`` GPUs (0: CPU)."""

    workers: int
    threads: int
    gpus: int = 0

    def describe(self) -> str:
        where = f"on {self.gpus} GPU{'s' if self.gpus > 1 else ''}" if self.gpus else "on the CPU"
        return f"{self.workers} workers x {self.threads} thread{'s' if self.threads > 1 else ''} {where}"


def auto_layout(workers: int | None, threads: int | None, cpu_cores: int, gpus: int) -> Layout:
    """``--workers``/``--threads-per-run`` as given, ``None`` chosen: on a GPU machine two
    runs per GPU at one thread; on a CPU as many one-thread runs as there are cores (or
    the cores shared out among the workers asked for)."""
    if gpus:
        return Layout(workers or RUNS_PER_GPU * gpus, threads or 1, gpus)
    if threads is None:
        threads = 1 if workers is None else max(1, cpu_cores // workers)
    return Layout(workers or max(1, cpu_cores // threads), threads)


class LocalExecutor(PoolExecutor):
    """Trains a study's runs in ``layout.workers`` local worker processes."""

    def __init__(self, layout: Layout, allow_device_change: bool = False) -> None:
        super().__init__(allow_device_change)
        self.layout = layout
        self.current: LocalPool | None = None
        self.pinned = False  # a run names a GPU (cuda:N): workers then see every GPU

    def check(self, runs: Sequence[PlannedRun]) -> None:
        self.pinned = self.pinned or any(r.config.device.startswith("cuda:") for r in runs)
        if self.current is not None:  # workers already starting: they load the data meanwhile
            for dataset, data_dir in dict.fromkeys(
                (r.config.dataset, r.config.data_dir) for r in runs
            ):
                self.current.warm(dataset, data_dir)
        super().check(runs)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The workers started for the block, unless a session is open already: a command
        that trains twice (a search, then its confirmation) starts them once."""
        if self.current is not None:
            yield
            return
        gpus = 0 if self.pinned else self.layout.gpus
        self.current = LocalPool(self.layout.threads, gpus, self.allow_device_change)
        self.current.start(self.layout.workers)  # they import torch while the driver goes on
        try:
            yield
        finally:
            self.current.close()
            self.current = None

    def pool(self, store: Store) -> LocalPool:
        assert self.current is not None, "pool() inside session()"
        return self.current

    def workers(self) -> int:
        return self.layout.workers
