"""One run of a study's plan, self-contained: what an executor needs to train it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config.schema import TrainConfig


@dataclass(frozen=True)
class PlannedRun:
    """A run, self-contained: everything an executor needs is here (picklable)."""

    run_id: str  # config_hash[:16]
    config_hash: str  # sha256 of the canonical identity JSON
    variant: str
    seed: int
    config: TrainConfig  # exactly what train() gets
    run_dir: Path  # absolute: <out>/runs/<variant-slug>-s<seed>-<run_id[:8]>
    identity: dict[str, Any] = field(compare=False, repr=False)  # what the hash covers
    # Nested epochs (cnnlab.study.plan.nesting): the checkpoint of a longer run of the same
    # settings this run starts from, and that run's id.
    start_from: Path | None = None
    trunk: str | None = None
