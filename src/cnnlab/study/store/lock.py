"""One `cnnlab run` per study folder: an OS lock on ``<study dir>/run.lock``.

The OS releases it when the process dies, so a free lock on a study whose store says
a run is 'running' means that run was interrupted (a kill, a lost machine).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import CnnlabError

LOCK_NAME = "run.lock"


def _busy(out_dir: Path) -> CnnlabError:
    return CnnlabError(
        f"another `cnnlab run` is working in {out_dir}; wait for it to end or stop it"
    )


def check_unlocked(out_dir: Path) -> None:
    """Fail now if another `cnnlab run` holds ``out_dir`` (before anything is printed);
    creates nothing. :func:`study_lock` still takes the lock itself."""
    try:
        import fcntl
    except ImportError:
        return
    lock = Path(out_dir) / LOCK_NAME
    if not lock.is_file():
        return
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(Path(out_dir)) from None
        fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def study_lock(out_dir: Path) -> Iterator[None]:
    """One `cnnlab run` per study folder at a time (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    created = not path.exists()
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out_dir) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        except CnnlabError:
            if created:  # a refused run leaves the folder as it found it
                path.unlink(missing_ok=True)
            raise


def is_locked(out_dir: Path) -> bool:
    """Whether a `cnnlab run` is working in ``out_dir`` now (False where locks do not exist)."""
    try:
        check_unlocked(out_dir)
    except CnnlabError:
        return True
    return False
