"""Named points in the end-of-epoch and end-of-run write sequence, and where a plan grows
by a round, for the fault tests.

``reached(name)`` does nothing unless ``$CNNLAB_KILL_AT`` names this point
(``name`` or ``name@N`` for its N-th passage in this process): then the process
SIGKILLs itself there, as a power cut or an OOM killer would, or sends itself the
signal ``$CNNLAB_KILL_SIGNAL`` names instead (``TERM``: a scheduler's stop). Only the
kill-point tests set the variables (tests/test_kill_points.py).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = (
    "evaluated",  # an epoch trained and evaluated, nothing of it written yet
    "checkpoint",  # an epoch's checkpoint.pt renamed into place
    "metrics",  # metrics.csv rewritten with that epoch
    "store-epoch",  # the epoch's row committed to the study database
    "predictions",  # test_predictions.npz of the final epoch written
    "summary",  # summary.json (and metrics.csv from the record) written
    "curves",  # curves.png drawn
    "finish",  # the run marked done in the study database
    "driver-epoch",  # a parallel executor's driver committed an epoch row a worker sent
    "round-recorded",  # a plan's new round stored with the study, none of its runs started
)
_passed: Counter[str] = Counter()


def reached(name: str) -> None:
    wanted = os.environ.get("CNNLAB_KILL_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] == int(nth or 1):
        which = os.environ.get("CNNLAB_KILL_SIGNAL", "KILL")
        os.kill(os.getpid(), getattr(signal, f"SIG{which}"))
