"""Atomic file writes: write to a temporary file in the same folder, then rename.

A kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _default_mode() -> int:
    # mkstemp creates files 0600; results are meant to be shared like any other file.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=suffix + ".tmp"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(
    target: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = True
) -> None:
    """Call ``write(fileobj)`` on a temporary file, fsync it and move it onto ``target``."""
    with atomic_path(target) as tmp, open(tmp, "wb" if binary else "w") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(target, lambda f: f.write(data))


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write(target, lambda f: f.write(text), binary=False)
