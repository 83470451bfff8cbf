"""Reading one run back from the study database (rows -> RunResult)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.store.results import RunResult


def run_result(
    conn: sqlite3.Connection,
    run_id: str,
    variant: str | None,
    absolute: Callable[[str], Path],
    db_path: Path,
) -> RunResult:
    """One run as the report reads it: its row, epochs, summary and provenance."""
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise CnnlabError(f"{db_path}: run {run_id} is in the plan but not in runs")
    history = [
        EpochRow.from_dict(dict(e))
        for e in conn.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,))
    ]
    final = conn.execute("SELECT summary_json FROM finals WHERE run_id = ?", (run_id,)).fetchone()
    # sqlite3.Row: `in` tests values, not column names
    provenance = row["provenance_json"] if "provenance_json" in row.keys() else None  # noqa: SIM118
    identity = json.loads(row["identity_json"])
    return RunResult(
        run_id=run_id,
        identity=identity,
        provenance=None if provenance is None else Provenance.from_dict(json.loads(provenance)),
        variant=variant or row["variant"],
        seed=int(row["seed"]),
        status=row["status"],
        config=json.loads(row["config_json"]),
        run_dir=absolute(row["run_dir"]),
        history=history,
        summary=RunSummary.from_dict(json.loads(final["summary_json"]))
        if final is not None
        else None,
        error=row["error"],
        device=row["device"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        attempts=int(row["attempts"]),
    )
