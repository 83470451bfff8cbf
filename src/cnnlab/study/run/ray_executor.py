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
and its run resumed from its checkpoint, at most ``driver.MAX_WORKER_DEATHS``
times per run; a driver that dies leaves its runs interrupted, and the same command resumes
them from their last finished epoch, and the local Ray instance it started dies with it
(``ray_reaper``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, RunFailed
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.pool_executor import PoolExecutor
from cnnlab.study.run.ray_pool import RayPool
from cnnlab.study.run.ray_reaper import Reaper
from cnnlab.study.store.database import Store

RAY_TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"
INSTALL_HINT = "Ray is not installed: pip install -e '.[ray]' (or pip install ray)"


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


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """The SIGTERM and SIGINT handlers as they were before the block: a driver's ray.init
    installs its own (SIGTERM: log and die on the spot), which would take a scheduler's stop
    away from cnnlab's, that marks the runs interrupted and exits 143."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers (and Ray sets none from elsewhere)
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)


class RayExecutor(PoolExecutor):
    """Runs a study's runs on Ray actors; the driver records what they send."""

    def __init__(self, settings: RaySettings | None = None) -> None:
        self.settings = settings or RaySettings()
        super().__init__(self.settings.allow_device_change)
        self.ray = import_ray()

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
        super().check(runs)

    def pool(self, store: Store) -> RayPool:
        s = self.settings
        return RayPool(
            self.ray, Path(store.root), s.cpus_per_run, s.gpus_per_run, s.allow_device_change
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Ray started (or joined) for the block, unless it already is: a command that
        trains twice (a search, then its confirmation) pays the start-up once."""
        if self.ray.is_initialized():
            yield
            return
        # A local instance is this command's to end, even when the command is killed.
        reaper = None if self.settings.address else Reaper()
        with _signal_handlers_kept():
            self._start()
        try:
            yield
        except self.ray.exceptions.RayError as exc:  # a node or one of Ray's own processes died
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise RunFailed(
                f"Ray lost a process it needs ({type(exc).__name__}: {first}); the runs done "
                "so far are kept: run the same command again to resume the others"
            ) from None
        finally:
            self.ray.shutdown()
            if reaper is not None:
                reaper.release()

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
            # Ray enables token authentication for a new local instance and announces it in
            # a warning for operators; the instance keeps it, the user is spared the notice.
            logging.getLogger(RAY_TOKEN_NOTICE).setLevel(logging.ERROR)
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

    def workers(self) -> int:
        s = self.settings
        if s.workers:
            return s.workers
        total = self.ray.cluster_resources()
        by_cpu = int(total.get("CPU", 1) // s.cpus_per_run)
        by_gpu = int(total.get("GPU", 0) // s.gpus_per_run) if s.gpus_per_run else by_cpu
        return max(1, min(by_cpu, by_gpu))
