"""Long work is never silent: in a pipe or a log, a line at least every ``every`` seconds.

A terminal shows live bars and spinners; a pipe shows only finished lines, so a CIFAR-10
decode (20 s), a long epoch or a big evaluation would print nothing for minutes. The
command line starts one heartbeat per process when its output is not a terminal; code
anywhere says what it is doing with :func:`doing` (cheap: it only stores the text), and
a background thread prints "still working: <text> (for <time at it>)" whenever the output has
been quiet for ``every`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")

DEFAULT_SECONDS = 30.0


class _TimedFile:
    """The output stream, noting when anything was last written to it."""

    def __init__(self, inner: IO[str], beat: Heartbeat) -> None:
        self.inner, self.beat = inner, beat

    def write(self, text: str) -> int:
        self.beat.last = time.monotonic()
        return self.inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Heartbeat:
    def __init__(self, out: IO[str], every: float = DEFAULT_SECONDS) -> None:
        self.out, self.every = out, every
        self.text = "starting"
        self.since = self.last = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cnnlab-heartbeat", daemon=True)

    def wrap(self, stream: IO[str]) -> IO[str]:
        return _TimedFile(stream, self)  # type: ignore[return-value]

    def doing(self, text: str) -> None:
        if text != self.text:
            self.text, self.since = text, time.monotonic()

    def _run(self) -> None:
        while not self.stopped.wait(min(1.0, self.every / 4)):
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                elapsed = _duration(now - self.since)
                self.out.write(f"still working: {self.text} (for {elapsed})\n")
                self.out.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


_current: Heartbeat | None = None


def start(out: IO[str], every: float = DEFAULT_SECONDS) -> Heartbeat:
    """Start this process's heartbeat, writing to ``out``; wrap the streams other output
    goes to with ``.wrap()`` so that it stays quiet while they speak."""
    global _current
    stop()
    _current = Heartbeat(out, every)
    _current.thread.start()
    return _current


def stop() -> None:
    global _current
    if _current is not None:
        _current.stopped.set()
        _current.thread.join(timeout=2)
        _current = None


def doing(text: str) -> None:
    """Say what the process is busy with (printed only if it stays quiet for long)."""
    if _current is not None:
        _current.doing(text)


def counted(items: Iterable[T], total: int, text: str, bar_from: int) -> Iterator[T]:
    """``items``, with a bar on a terminal when there are ``bar_from`` or more; elsewhere
    ``text`` is what the heartbeat says. (A transient bar in a pipe draws nothing but
    leaves an empty line behind.)"""
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    doing(text)
    if total < bar_from or not console.is_terminal:
        yield from items
        return
    yield from track(items, total=total, description=text, console=console, transient=True)
