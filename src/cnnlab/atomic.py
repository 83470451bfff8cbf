"""Atomic file writes: write to a temporary file in the same folder, then rename.

A kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
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
    try:
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=suffix + ".tmp"
        )
    except OSError as exc:  # a full disk or a read-only folder: name the file meant
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.filename is None or str(exc.filename) == str(tmp):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
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


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write(target, lambda f: f.write(text), binary=False)


# What atomic_path names its temporary files: "." + target name + "." + mkstemp's 8
# random characters + the suffix + ".tmp".
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike[str], older_than: float = 0.0) -> int:
    """Delete the temporary files a killed atomic write left in ``folder`` (not below it),
    those last changed more than ``older_than`` seconds ago; return how many."""
    removed = 0
    now = time.time()
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            if not (entry.is_file(follow_symlinks=False) and _TEMPORARY.match(entry.name)):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime >= older_than:
                    os.unlink(entry.path)
                    removed += 1
    return removed
