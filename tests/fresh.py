"""`cnnlab ARGS` in a process of its own, without paying torch's import each time.

Each process is forked from a server that imported the heavy third-party modules once
(torch with its dynamo, which the first optimizer imports: ~6 s of every fresh
interpreter here): a real process with its own exit status, environment, working
folder, and stdout/stderr that are files, not a terminal, killed as any process is.
cnnlab itself is imported in the child, after its environment is set, so nothing it
reads at import time comes from the server. Not forked from pytest itself: autograd
refuses to run in a fork of a process that has trained.

The entry point itself (`python -m cnnlab`) and commands that must not import torch
are still tested with real subprocesses.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(
    ["torch", "torch._dynamo", "sympy", "matplotlib.pyplot", "numpy", "PIL.Image", "pydantic"]
)


def _child(args: list[str], env: dict[str, str], cwd: str | None, out: str, err: str) -> None:
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (ends with the process)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    # A command typed at a terminal takes Ctrl-C; the test run itself may not (a
    # non-interactive shell's background job has SIGINT ignored, and children inherit it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if cwd is not None:
        os.chdir(cwd)
    if env.get("OMP_NUM_THREADS", "").isdigit():
        import torch  # imported by the server before this environment existed

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    from cnnlab.cli import main

    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def run_cnnlab(
    args: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    while_running: Callable[[int], object] | None = None,
) -> subprocess.CompletedProcess:
    """``cnnlab ARGS`` with ``env`` added to this process's environment; returncode is
    negative when a signal ended it (as subprocess.run's). ``while_running`` is called
    with the process's pid every fifth of a second until it ends."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        full_env = {**os.environ, **(env or {})}
        process = _FORKS.Process(
            target=_child,
            args=(list(args), full_env, str(cwd) if cwd else None, str(out), str(err)),
        )
        process.start()
        deadline = time.monotonic() + timeout
        while process.exitcode is None and time.monotonic() < deadline:
            if while_running is not None and process.pid is not None:
                while_running(process.pid)
            process.join(0.2 if while_running else timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["cnnlab", *args], timeout)
        return subprocess.CompletedProcess(
            ["cnnlab", *args], process.exitcode, _text(out), _text(err)
        )


def _text(path: Path) -> str:
    """What the child wrote there (nothing if it died before opening the file)."""
    return path.read_text() if path.exists() else ""
