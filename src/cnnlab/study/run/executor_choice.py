"""Which executor a study runs on: one rule for `cnnlab run` and ``cnnlab.run_study``.

``kind`` None (the default) is a local pool of worker processes, or this process when
the pool would have one worker; "local" is the pool even for one worker; "inprocess"
one run after another in this process; "ray" Ray. ``workers`` None is ``auto``
(:func:`~cnnlab.study.run.local_executor.auto_layout`), or ``$CNNLAB_WORKERS`` when set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cnnlab.errors import CnnlabError
from cnnlab.study.run.executor import Executor, InProcessExecutor

KINDS = ("local", "inprocess", "ray")


@dataclass(frozen=True)
class ExecutorChoice:
    kind: str | None = None
    workers: int | None = None  # None: auto
    threads_per_run: int | None = None  # None: 1 in a pool, torch's default in process
    allow_device_change: bool = False
    address: str | None = None  # ray: the cluster to join
    gpus_per_run: float = 0.0  # ray


def workers_from_env() -> int | None:
    text = os.environ.get("CNNLAB_WORKERS", "auto").strip()
    if text.lower() == "auto":
        return None
    if not (text.isdigit() and int(text) > 0):
        raise CnnlabError(f"$CNNLAB_WORKERS={text!r}: use a positive number or auto (or unset it)")
    return int(text)


def choose_executor(choice: ExecutorChoice, uses_gpu: bool = False) -> Executor:
    """The executor ``choice`` asks for (Ray imported only for "ray"); ``uses_gpu``: some
    run may train on a GPU, so ``auto`` counts GPUs."""
    if choice.kind not in (None, *KINDS):
        raise CnnlabError(f"executor '{choice.kind}': use one of {', '.join(KINDS)}")
    if choice.kind != "ray":
        given = [
            f
            for f, v in (("--address", choice.address), ("--gpus-per-run", choice.gpus_per_run))
            if v
        ]
        if given:
            raise CnnlabError(f"{', '.join(given)} need --executor ray")
    workers = choice.workers if choice.workers is not None else workers_from_env()
    if choice.kind == "ray":
        return _ray(choice, workers)
    threads, allow = choice.threads_per_run, choice.allow_device_change
    if choice.kind == "inprocess" or (workers == 1 and choice.kind is None):
        return InProcessExecutor(allow, threads)
    from cnnlab.study.run.local_executor import LocalExecutor, auto_layout, cores, gpu_count

    layout = auto_layout(workers, threads, cores(), gpu_count() if uses_gpu else 0)
    if layout.workers == 1 and choice.kind is None:  # a pool of one: this process will do
        return InProcessExecutor(allow, layout.threads)
    return LocalExecutor(layout, allow)


def _ray(choice: ExecutorChoice, workers: int | None) -> Executor:
    if not (0 <= choice.gpus_per_run <= 64):
        raise CnnlabError(f"--gpus-per-run {choice.gpus_per_run}: use 0 to 64, e.g. 0.25 or 1")
    from cnnlab.study.run.ray_executor import RayExecutor, RaySettings

    return RayExecutor(
        RaySettings(
            address=choice.address,
            workers=workers,
            cpus_per_run=choice.threads_per_run or 1,
            gpus_per_run=choice.gpus_per_run,
            allow_device_change=choice.allow_device_change,
        )
    )


def start_workers_early(choice: ExecutorChoice) -> None:
    """Start the local pool's fork server now if ``choice`` trains in a pool on the CPU,
    so that it imports torch while this process reads the study and imports its own (on
    the CPU a pool's workers are forked from it). A study that turns out to be on a GPU,
    whose workers are spawned, wastes one torch import in a spare process."""
    if choice.kind == "ray":  # (choosing it would import Ray)
        return
    from cnnlab.study.run.local_executor import LocalExecutor
    from cnnlab.study.run.local_pool import start_fork_server

    if isinstance(choose_executor(choice, uses_gpu=False), LocalExecutor):
        start_fork_server()
