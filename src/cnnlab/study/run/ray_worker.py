"""The Ray transport's worker side: an actor around the shared
:class:`~cnnlab.study.run.worker.RunWorker`, sending its events through a Ray queue and
waiting on a :class:`StopBoard` for a judged run's verdicts (workers never open the
study database)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.worker import RunWorker

VERDICT_WAIT_S = 3600.0  # the driver answers within its event poll; this only ends a hang


class RayRunWorker:
    """A Ray actor: keeps torch imported and the datasets loaded across its runs."""

    def __init__(self, threads: int, events: Any, allow_device_change: bool = False) -> None:
        self.worker = RunWorker(threads, events.put, allow_device_change)

    def sees(self, path: str) -> str | None:
        """None when ``path`` exists here, else this node's address (for the error)."""
        import ray

        return None if Path(path).exists() else ray.util.get_node_ip_address()

    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, run: PlannedRun, epochs_done: int, board: Any = None) -> bool:
        def verdict(run_id: str, epoch: int) -> str | None:
            import ray

            return ray.get(board.verdict.remote(run_id, epoch), timeout=VERDICT_WAIT_S)

        return self.worker.run(run, epochs_done, None if board is None else verdict)


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
