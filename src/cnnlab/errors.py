"""The one exception type that reaches the user as a single clear line."""

from __future__ import annotations

import errno


class CnnlabError(Exception):
    """A problem with the user's input or environment.

    The message names what is wrong and how to fix it; the CLI prints it on one
    line and exits with ``exit_code`` instead of showing a traceback: 2 for bad
    input, 1 for work that was tried and failed (a run that diverged, a file that
    could not be read), 3 when the machine refused a write (:class:`MachineRefused`),
    so that scripts can tell them apart.
    """

    exit_code = 2


class DataError(CnnlabError):
    """A dataset file is missing, corrupt or inconsistent."""


class ConfigError(CnnlabError):
    """A setting, model file or study file is invalid."""


class RunFailed(CnnlabError):
    """The input was fine but the work failed (e.g. training diverged)."""

    exit_code = 1


class RunPruned(CnnlabError):
    """A search's pruner stopped a trial: finished by decision, not failed. Its message
    starts with "pruned"."""

    exit_code = 0


class MachineRefused(CnnlabError):
    """The machine refused a write: no space left on the device, a read-only or unwritable
    folder. What was written before is kept; the same command continues once it is fixed.
    Exit status 3, apart from bad input (2) and failed work (1)."""

    exit_code = 3


_REFUSALS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def machine_refusal(exc: BaseException) -> MachineRefused | None:
    """The one line for an OSError (or SQLite's) that is the machine's refusal to write;
    None for any other error."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in _REFUSALS:
        why, where = _REFUSALS[exc.errno], exc.filename
        if isinstance(where, bytes):  # TensorBoard's writer names its files in bytes
            where = where.decode(errors="replace")
    elif "database or disk is full" in text:
        why, where = _REFUSALS[errno.ENOSPC], "the study database"
    elif "attempt to write a readonly database" in text:
        why, where = _REFUSALS[errno.EROFS], "the study database"
    else:
        return None
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.EACCES, errno.EPERM):  # reading or writing: say which file, not which
        return MachineRefused(
            f"{why}: {where or 'a file'}: give this user access to it or choose another "
            "folder, then run the same command again (what was done so far is kept)"
        )
    full = code in (errno.ENOSPC, errno.EDQUOT) or "full" in text
    fix = "free space on that disk" if full else "make that folder writable"
    return MachineRefused(
        f"{why} writing {where or 'a file'}: {fix} or choose another --out, then run the same "
        "command again (what was done so far is kept)"
    )
