"""The local transport of the driver's workers: long-lived processes on this machine.

Each worker is a child process that sets its thread count and trains the runs it is
sent one at a time with the shared :class:`~cnnlab.study.run.worker.RunWorker`,
keeping its datasets loaded between them. On a Linux CPU workers are forked from
multiprocessing's fork server, a clean process that imported torch once (no torch
threads or locks: it never ran an operation), so a pool of N costs one torch import,
not N; each worker takes the driver's environment and folder first. A pool for GPUs
spawns fresh interpreters: a CUDA runtime touched before a fork fails in the child.
``CNNLAB_WORKER_START=spawn`` spawns on the CPU too.
One duplex pipe per worker carries its runs and a judged run's verdicts in, its events
out; a worker killed mid-message spoils only its own pipe, which goes with it.

A worker ignores Ctrl-C (the driver stops it and marks its run interrupted), and dies
with the driver: Linux delivers it SIGKILL when its parent dies, however the parent
died (a forked worker's parent is the fork server, which ends when the driver's end of
its pipe closes), so a killed `cnnlab run` leaves no process behind. On a machine with
GPUs, worker ``i`` sees only GPU ``i % count`` (``CUDA_VISIBLE_DEVICES``), so runs
spread over them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_plan import PlannedRun

STOP_WAIT_S = 5.0  # an idle worker asked to stop is killed if it has not after this long
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
WORKER_NAME = b"cnnlab-worker"  # a worker process's name (/proc/PID/comm)


@dataclass(eq=False)
class LocalWorker:
    process: Any  # multiprocessing's ForkServerProcess or SpawnProcess
    conn: Connection
    index: int
    run_id: str | None = None  # the run it is training
    dead: bool = False


# The fork server's imports, seconds paid once instead of in each worker. No cnnlab module
# reads the environment when imported, so a worker's setting of it comes in time.
PRELOADED = ["torch", "torch._dynamo", "cnnlab.study.run.worker"]
START_METHODS = ("forkserver", "spawn")


def worker_main(
    conn: Connection,
    threads: int,
    gpu: str | None,
    allow_change: bool,
    env: dict[str, str],
    cwd: str,
) -> None:
    """A worker process's life: take runs from the pipe until told to stop."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the pool
    # A forked worker has the fork server's environment and folder, from when it started.
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch starts CUDA
    from cnnlab.study.run.worker import RunWorker

    send = _locked(conn.send)  # a log line may come from another thread
    _log_to_driver(send)
    worker = RunWorker(threads, send, allow_change)
    import torch._dynamo  # noqa: F401  (what the first optimizer imports: seconds, paid now)

    send(("ready", "", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        if message[0] == "stop":
            return
        if message[0] == "warm":  # a dataset its runs will read: loaded while it waits
            with contextlib.suppress(Exception):  # a run that reads it says what is wrong
                worker.inner.data.dataset(message[1], message[2])
            continue
        _, run, epochs_done, judged = message

        def verdict(run_id: str, epoch: int) -> str | None:
            _, _, _, why = conn.recv()  # ("verdict", run id, epoch, why): the driver's answer
            return why

        try:
            worker.run(run, epochs_done, verdict if judged else None)
        except Exception as exc:  # not taken (its folder is held), or the disk is full
            line = str(exc).splitlines()[0] if str(exc) else ""
            send(("task_error", run.run_id, line, getattr(exc, "exit_code", 2)))
        send(("task_done", run.run_id))


def _locked(send: Callable[[Any], None]) -> Callable[[Any], None]:
    lock = threading.Lock()

    def locked_send(message: Any) -> None:
        with lock:
            send(message)

    return locked_send


class _ToDriver(logging.Handler):
    """cnnlab's warnings in a worker, said by the driver (once: the driver's stderr
    handler drops a warning it has shown), instead of Python's bare last-resort lines."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__(logging.WARNING)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # the driver is gone: nobody to tell
            self.send(("log", "", record.levelno, record.name, record.getMessage()))


def _log_to_driver(send: Callable[[Any], None]) -> None:
    root = logging.getLogger("cnnlab")
    root.addHandler(_ToDriver(send))
    root.propagate = False


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, and name it (``ps``,
    ``top``: a forked worker's command line is the fork server's); elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(PR_SET_NAME, WORKER_NAME)
    if os.getppid() == 1:  # the parent died before the request: go now
        os._exit(1)


def start_method(gpus: int) -> str:
    """How workers start: forked from the fork server on a Linux CPU, spawned for GPUs
    and elsewhere; ``$CNNLAB_WORKER_START`` chooses."""
    asked = os.environ.get("CNNLAB_WORKER_START", "")
    if asked and asked not in START_METHODS:
        raise ConfigError(
            f"CNNLAB_WORKER_START={asked!r} is not a way to start workers; use "
            f"{' or '.join(START_METHODS)}, or unset it"
        )
    if asked:
        return asked
    # (macOS has a fork server too, but its system libraries are not safe to fork.)
    return "forkserver" if not gpus and sys.platform.startswith("linux") else "spawn"


def _context(gpus: int) -> Any:
    """multiprocessing's context for a pool's workers (a fork server's preloads torch)."""
    context = mp.get_context(start_method(gpus))
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(PRELOADED)
    return context


def start_fork_server() -> None:
    """Have the fork server start importing torch now, if CPU workers will fork from it."""
    if _context(gpus=0).get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


class LocalPool:
    """Worker processes on this machine, kept for the whole session: a search and its
    confirmation train in the same workers."""

    def __init__(self, threads: int, gpus: int = 0, allow_device_change: bool = False) -> None:
        self.threads, self.gpus, self.allow_device_change = threads, gpus, allow_device_change
        self.context = _context(gpus)
        self.workers: list[LocalWorker] = []

    def start(self, count: int, replacing: bool = False) -> list[LocalWorker]:
        """``count`` workers: idle ones of this session first (those a driver that ended
        left, or started early), then new processes; only new ones ``replacing`` dead
        ones, since a driver holds the idle ones already (handing one out twice sent two
        runs to it, and the driver lost one of them)."""
        reusable = [] if replacing else [w for w in self.workers if w.run_id is None and not w.dead]
        idle = reusable[:count]
        for _ in range(count - len(idle)):
            idle.append(self._spawn(len(self.workers)))
        return idle

    def _spawn(self, index: int) -> LocalWorker:
        ours, theirs = self.context.Pipe(duplex=True)
        gpu = str(index % self.gpus) if self.gpus else None
        process = self.context.Process(
            target=worker_main,
            args=(
                theirs,
                self.threads,
                gpu,
                self.allow_device_change,
                dict(os.environ),
                os.getcwd(),
            ),
            name=f"cnnlab-worker-{index}",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its end: EOF here when it dies
        worker = LocalWorker(process, ours, index)
        self.workers.append(worker)
        return worker

    def warm(self, dataset: str, data_dir: str | None) -> None:
        """Have every idle worker load ``dataset`` before its first run asks for it."""
        for worker in self.workers:
            if not worker.dead and worker.run_id is None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    worker.conn.send(("warm", dataset, data_dir))

    def submit(self, worker: LocalWorker, run: PlannedRun, epochs_done: int, judged: bool) -> None:
        worker.run_id = run.run_id
        try:
            worker.conn.send(("run", run, epochs_done, judged))
        except (BrokenPipeError, OSError):
            worker.dead = True  # found by the next wait

    def wait(self, timeout: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, bool]]]:
        live = [w for w in self.workers if not w.dead]
        handles: list[Any] = [w.conn for w in live] + [w.process.sentinel for w in live]
        ready = set(wait(handles, timeout)) if handles else set()
        events: list[tuple[Any, ...]] = []
        ended: list[tuple[Any, bool]] = []
        for worker in live:
            if worker.conn in ready and self._read(worker, events):
                ended.append((worker, False))
                worker.run_id = None
            if worker.dead or worker.process.sentinel in ready or not worker.process.is_alive():
                self._read(worker, events)  # what it managed to send before it died
                self._bury(worker)
        for worker in self.workers:
            if worker.dead and worker.run_id is not None:  # died with a run: it resumes
                ended.append((worker, True))
                worker.run_id = None
        return events, ended

    def _read(self, worker: LocalWorker, events: list[tuple[Any, ...]]) -> bool:
        """Every message waiting on ``worker``'s pipe; True when its run is over."""
        over = False
        try:
            while not worker.dead and worker.conn.poll():
                message = worker.conn.recv()
                if message[0] == "task_done":
                    over = True
                elif message[0] == "log":
                    logging.getLogger(message[3]).log(message[2], "%s", message[4])
                elif message[0] != "ready":
                    events.append(message)
        except Exception:  # closed, or a message cut short by the worker's death
            worker.dead = True
        return over

    def _bury(self, worker: LocalWorker) -> None:
        worker.dead = True
        worker.process.join(timeout=1.0)
        with contextlib.suppress(OSError):
            worker.conn.close()

    def decide(self, worker: LocalWorker, run_id: str, epoch: int, why: str | None) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            worker.conn.send(("verdict", run_id, epoch, why))

    def where(self, worker: LocalWorker) -> str:
        return f"local worker {worker.index}"

    def stop(self, worker: LocalWorker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        self._bury(worker)

    def close(self) -> None:
        """Every worker ended: idle ones asked to stop, the rest (and the slow) killed."""
        for worker in self.workers:
            if not worker.dead and worker.run_id is None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    worker.conn.send(("stop",))
        for worker in self.workers:
            worker.process.join(timeout=STOP_WAIT_S if worker.run_id is None else 0.0)
            self.stop(worker)
        self.workers = []
