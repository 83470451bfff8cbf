"""Reading a study back from its database: the runs a report shows (rows -> RunResult),
with the plan's claims."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow, Provenance, RunSummary
from cnnlab.study.store.report_plan import (
    report_plan,
    stored_claims,
    stored_epoch_families,
    stored_factors,
    stored_sequential,
)
from cnnlab.study.store.results import RunResult, StudyResults
from cnnlab.study.store.sqlite_schema import DB_NAME


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


def study_results(
    conn: sqlite3.Connection,
    root: Path,
    only: Sequence[str] | None,
    all_runs: bool,
    trials: list[dict[str, Any]],
) -> StudyResults:
    """See :meth:`cnnlab.study.store.database.Store.results`."""
    latest = conn.execute("SELECT * FROM studies ORDER BY id DESC LIMIT 1").fetchone()
    if latest is None:
        raise CnnlabError(f"{root}: the study database holds no study yet")
    shown = report_plan(conn, latest)
    variants = shown.variants
    order = [run_id for run_id, _, _ in shown.runs]
    names = {run_id: variant for run_id, variant, _ in shown.runs}
    if all_runs:
        rest = conn.execute("SELECT run_id FROM runs ORDER BY variant, seed, run_id")
        order += [r["run_id"] for r in rest if r["run_id"] not in names]
    if only is not None:
        wanted = set(only)
        order = [run_id for run_id in order if run_id in wanted]

    def absolute(stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else root / p

    db_path = root / DB_NAME
    runs = [run_result(conn, run_id, names.get(run_id), absolute, db_path) for run_id in order]
    for r in runs:
        if r.variant not in variants:
            variants.append(r.variant)
    return StudyResults(
        name=latest["name"],
        dataset=latest["dataset"],
        baseline=shown.baseline,
        variants=variants,
        runs=runs,
        study_dir=root,
        description=latest["description"],
        file_path=latest["file_path"],
        file_text=latest["file_text"],
        options=json.loads(latest["options_json"]),
        trials=trials,
        claims=stored_claims(latest),
        sequential=stored_sequential(latest),
        epoch_families=stored_epoch_families(latest),
        factors=stored_factors(latest),
    )
