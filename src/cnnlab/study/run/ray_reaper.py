"""Ends the local Ray instance a driver started when the driver is killed outright.

A SIGKILLed driver runs no ``finally``: its Ray node processes (GCS, raylet) die with
it, but the raylet's children (the dashboard and runtime-env agents, the run workers)
are reparented and live on until their own health checks notice, a minute or more of
cores and memory. The reaper is a small stdlib-only process the driver starts beside
its instance: it watches the driver's process tree and, when the pipe from the driver
closes without the word that Ray was shut down, SIGKILLs what is left of that tree.

Linux only (it reads /proc); elsewhere the driver starts no reaper and Ray's own
health checks end the processes, later.

This file runs as a script (``python -I ray_reaper.py PID``) so that the reaper
imports neither cnnlab nor torch: it starts in milliseconds and holds a few MB.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")
SHUT_DOWN = b"shut down\n"  # what the driver writes after ray.shutdown(): nothing to do
WATCH_EVERY_S = 0.5  # run workers start later than the instance; look for them this often


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a living process, None if it is gone
    (a zombie, whose parent has not collected it, is gone too)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    return None if fields[0] in "ZX" else (int(fields[1]), int(fields[19]))


def descendants(root: int) -> dict[int, int]:
    """Every living process below ``root``, as pid -> start time."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
            started[int(entry.name)] = stat[1]
    found: dict[int, int] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid not in found and pid in started:
            found[pid] = started[pid]
            stack.extend(children.get(pid, []))
    return found


def living(seen: dict[int, int]) -> list[int]:
    """The processes of ``seen`` still running as themselves (a pid may be reused)."""
    return [pid for pid, started in seen.items() if (_stat(pid) or (0, -1))[1] == started]


def kill_all(seen: dict[int, int]) -> None:
    for pid in living(seen):
        with contextlib.suppress(OSError):  # it ended meanwhile
            os.kill(pid, signal.SIGKILL)


def watch(driver: int, pipe: int) -> None:
    seen: dict[int, int] = {}
    message = b""
    while True:
        seen.update(descendants(driver))
        seen.pop(os.getpid(), None)
        ready, _, _ = select.select([pipe], [], [], WATCH_EVERY_S)
        if ready:
            chunk = os.read(pipe, 64)
            if chunk:
                message += chunk
                continue
            break  # the pipe closed: the driver has ended, one way or another
    if message != SHUT_DOWN:
        # The driver's death also reparents its tree; a last look below the processes
        # seen finds workers started since the previous one.
        for pid in list(seen):
            seen.update(descendants(pid))
        kill_all(seen)


class Reaper:
    """The driver's side: start the reaper, tell it when Ray was shut down."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if not PROC.is_dir():
            return
        self.process = subprocess.Popen(
            [sys.executable, "-I", __file__, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the terminal's group must not end it first
        )

    def release(self) -> None:
        """Ray was shut down cleanly: the reaper leaves without killing anything."""
        if self.process is None or self.process.stdin is None:
            return
        with contextlib.suppress(OSError):  # it ended already: nothing to tell
            self.process.stdin.write(SHUT_DOWN)
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.fileno())
