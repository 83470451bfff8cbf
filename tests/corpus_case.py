"""One case of the fault corpus: a bad input, the command that reads it, what must happen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """``make`` writes the bad input into the current directory and returns the argv.

    ``code`` is the exit status (2 bad input, 1 tried and failed); every fragment in
    ``says`` must appear in the one error line. ``env`` is set while it runs;
    ``bomb_limit`` lowers Pillow's decompression-bomb threshold so that a small file
    can stand for a bomb. ``writes`` names the paths the command may create (a study
    whose runs failed still stores them).
    """

    name: str
    make: Callable[[], list[str]]
    code: int
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    bomb_limit: int | None = None
    writes: tuple[str, ...] = ()
