"""The results store: one SQLite database per study folder, ``<study dir>/study.sqlite``.

Tables::

    studies    one row per distinct invocation of the study (file text, overrides, variants,
               and its plan: claims, rounds)
    plan       the runs that invocation expanded to, in order: what the report shows,
               with the runs of earlier --variants invocations of it (report_plan)
    runs       one row per run id: variant, seed, config, status, times, device, error
    epochs     one row per finished epoch, PRIMARY KEY (run_id, epoch): a resumed
               epoch overwrites its row instead of adding a second one
    finals     the run's summary.json, once it is done
    artifacts  the files a run left (config, metrics, summary, curves, checkpoint)

WAL mode, ``synchronous=FULL``; every write is one transaction, so a kill at any
moment leaves the database as it was after the last completed write. Paths are
stored relative to the study folder, so the folder can be moved or copied.

This module imports neither torch nor the trainer: the report reads results
through :func:`load_results` cheaply.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.records import EPOCH_COLUMNS, EpochRow, Provenance, RunSummary
from cnnlab.study.store.lock import is_locked
from cnnlab.study.store.reading import study_results
from cnnlab.study.store.report_plan import plan_of, recorded_rounds
from cnnlab.study.store.results import StudyResults
from cnnlab.study.store.sqlite_schema import (
    DB_NAME,
    SCHEMA,
    SCHEMA_VERSION,
    VALUE_COLUMNS,
    upgrade_from,
)
from cnnlab.study.store.transaction import Transaction


@dataclass(frozen=True)
class StudyRecord:
    """One invocation of a study, as its ``studies`` row keeps it."""

    name: str
    file_path: Path
    file_text: str
    dataset: str
    baseline: str | None
    description: str
    variants: Sequence[str]
    options: Mapping[str, Any]  # the command line's overrides, and a search's facts
    plan: Mapping[str, Any] | None = None  # the plan value (study_plan.Study.stored())

    def row(self) -> dict[str, Any]:
        """The row's values by column, as stored (JSON in canonical form)."""
        return {
            "name": self.name,
            "file_path": str(Path(self.file_path).absolute()),
            "file_text": self.file_text,
            "dataset": self.dataset,
            "baseline": self.baseline,
            "description": self.description,
            "variants_json": json.dumps(list(self.variants)),
            "options_json": json.dumps(dict(self.options)),
            "created": time.time(),
            "plan_json": None if self.plan is None else json.dumps(dict(self.plan)),
        }


class Store:
    """A study folder's database. Open with ``Store(study_dir)``; use as a context manager."""

    def __init__(self, study_dir: Path, create: bool = True) -> None:
        """``create=False`` opens an existing database read-only: a command that only
        reads (report, compare) never writes a schema into a file that lacks one."""
        self.root = Path(study_dir).absolute()
        self.path = self.root / DB_NAME
        if not self.path.is_file() and not create:
            raise CnnlabError(f"{self.root}: no study results here (no {DB_NAME})")
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            else:
                uri = f"{self.path.as_uri()}?mode=ro"
                if not Path(f"{self.path}-wal").exists() and not is_locked(self.root):
                    # No writer and nothing to recover: read it as a plain file, so that
                    # reading leaves no -wal or -shm beside it.
                    uri += "&immutable=1"
                self.conn = sqlite3.connect(uri, timeout=30, isolation_level=None, uri=True)
            self.conn.row_factory = sqlite3.Row
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CnnlabError(
                    f"{self.path}: written by a newer cnnlab (schema {version}); upgrade cnnlab"
                )
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
            if (version == 0 and not create) or (version > 0 and "studies" not in tables):
                raise CnnlabError(
                    f"{self.path}: not a cnnlab study database (no cnnlab tables); "
                    "pass the folder a `cnnlab run` wrote"
                )
            if not create:
                return
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            if version == 0:  # one script, one transaction: all tables or none
                self.conn.executescript(
                    f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                )
            elif version < SCHEMA_VERSION:  # foreign keys off: runs is dropped and rebuilt
                self.conn.executescript(
                    f"BEGIN IMMEDIATE; {upgrade_from(version)}"
                    f" PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                )
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise CnnlabError(f"{self.path}: not a readable study database ({exc})") from None
        except CnnlabError:
            self._close_quietly()  # a refused file is left as it was: no -wal or -shm beside it
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _transaction(self) -> Transaction:
        return Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rel(self, path: Path) -> str:
        path = Path(path).absolute()
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _abs(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # -- writing ---------------------------------------------------------------------------

    def record_study(
        self, study: StudyRecord, runs: Sequence[Any], extra_runs: Sequence[Any] = ()
    ) -> int:
        """Record this invocation of the study and its expansion (``runs``: PlannedRun-like,
        with run_id, variant, seed, config, config_hash, identity, run_dir); register new runs
        as pending and bring the stored config/dir/variant name of runs not yet done up to date.

        Returns the studies row id; an invocation identical to the latest one reuses its row.
        ``extra_runs`` (a search's trials) are registered like ``runs`` but not planned: the
        report shows them in its search section, not as variants.
        """
        row = study.row()
        planned = [(r.run_id, r.variant, r.seed) for r in runs]
        with self._transaction():
            latest = self.conn.execute("SELECT * FROM studies ORDER BY id DESC LIMIT 1").fetchone()
            if latest is not None and latest["name"] != study.name:
                raise CnnlabError(
                    f"{self.root} holds results of study '{latest['name']}', not '{study.name}'; "
                    "choose another --out"
                )
            same = latest is not None and plan_of(self.conn, latest["id"]) == planned
            if same and all(latest[k] == v for k, v in row.items() if k != "created"):
                study_id = latest["id"]
            else:
                columns = ", ".join(row)
                cur = self.conn.execute(
                    f"INSERT INTO studies ({columns}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
                study_id = int(cur.lastrowid or 0)
                self.conn.executemany(
                    "INSERT INTO plan (study_id, position, run_id, variant, seed) VALUES (?, ?, ?, ?, ?)",
                    [(study_id, i, *entry) for i, entry in enumerate(planned)],
                )
            for r in [*runs, *extra_runs]:
                self._register_run(r)
        return study_id

    def _register_run(self, r: Any) -> None:
        """A planned run as pending, or a not yet finished one brought up to date."""
        self.conn.execute(
            "INSERT INTO runs (run_id, variant, seed, config_json, config_hash, identity_json,"
            " status, run_dir) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)"
            " ON CONFLICT (run_id) DO UPDATE SET variant = excluded.variant,"
            " run_dir = CASE WHEN runs.status = 'done' THEN runs.run_dir ELSE excluded.run_dir END,"
            " config_json = CASE WHEN runs.status = 'done' THEN runs.config_json"
            " ELSE excluded.config_json END",
            (
                r.run_id,
                r.variant,
                r.seed,
                json.dumps(r.config.model_dump(mode="json"), sort_keys=True),
                r.config_hash,
                json.dumps(r.identity, sort_keys=True),
                self._rel(r.run_dir),
            ),
        )

    def statuses(self) -> dict[str, str]:
        return {
            r["run_id"]: r["status"] for r in self.conn.execute("SELECT run_id, status FROM runs")
        }

    def epochs_done(self, run_id: str) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM epochs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return int(row[0])

    def start_run(self, run_id: str, device: str, provenance: Provenance | None = None) -> None:
        """Mark a run running (a new attempt): error and end time cleared, its provenance
        recorded."""
        with self._transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'running', started_at = ?, ended_at = NULL, error = NULL,"
                " device = ?, attempts = attempts + 1, provenance_json = ? WHERE run_id = ?",
                (
                    time.time(),
                    device,
                    None if provenance is None else json.dumps(provenance.to_dict()),
                    run_id,
                ),
            )
            self.conn.execute("DELETE FROM finals WHERE run_id = ?", (run_id,))

    def add_epoch(self, run_id: str, row: EpochRow) -> None:
        """Store one finished epoch (a metrics row); an epoch stored before is overwritten."""
        with self._transaction():
            self._put_epochs(run_id, [row])

    def replace_epochs(self, run_id: str, rows: Iterable[EpochRow]) -> None:
        """Make the run's epoch rows exactly ``rows`` (e.g. a checkpoint's history)."""
        with self._transaction():
            self.conn.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            self._put_epochs(run_id, rows)

    def _put_epochs(self, run_id: str, rows: Iterable[EpochRow]) -> None:
        columns = ", ".join(EPOCH_COLUMNS)
        marks = ", ".join("?" for _ in EPOCH_COLUMNS)
        self.conn.executemany(
            f"INSERT OR REPLACE INTO epochs (run_id, {columns}) VALUES (?, {marks})",
            [(run_id, row.epoch, *(getattr(row, c) for c in VALUE_COLUMNS)) for row in rows],
        )

    def finish_run(
        self,
        run_id: str,
        summary: RunSummary,
        history: Sequence[EpochRow],
        artifacts: Mapping[str, Path],
    ) -> None:
        """Mark a run done with its summary, its complete epoch history and its files."""
        with self._transaction():
            self.conn.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            self._put_epochs(run_id, history)
            self.conn.execute(
                "INSERT OR REPLACE INTO finals (run_id, summary_json) VALUES (?, ?)",
                (run_id, json.dumps(summary.to_dict())),
            )
            self._put_artifacts(run_id, artifacts)
            self.conn.execute(
                "UPDATE runs SET status = 'done', ended_at = ?, error = NULL WHERE run_id = ?",
                (time.time(), run_id),
            )

    def fail_run(
        self, run_id: str, error: str, artifacts: Mapping[str, Path] | None = None
    ) -> None:
        with self._transaction():
            self._put_artifacts(run_id, artifacts or {})
            self.conn.execute(
                "UPDATE runs SET status = 'failed', ended_at = ?, error = ? WHERE run_id = ?",
                (time.time(), error, run_id),
            )

    def prune_run(self, run_id: str, why: str) -> None:
        """A search trial its pruner stopped: finished by decision, not failed."""
        with self._transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'pruned', ended_at = ?, error = ? WHERE run_id = ?",
                (time.time(), why, run_id),
            )

    def record_trial(
        self,
        number: int,
        run_id: str,
        params: Mapping[str, Any],
        state: str,
        objective: float | None,
    ) -> None:
        with self._transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO trials (number, run_id, params_json, state, objective)"
                " VALUES (?, ?, ?, ?, ?)",
                (number, run_id, json.dumps(dict(params), sort_keys=True), state, objective),
            )

    def trials(self) -> list[dict[str, Any]]:
        """The search's trials in order: number, run_id, params, state, objective."""
        try:
            rows = self.conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
        except sqlite3.OperationalError:  # a folder of schema 1 or 2, opened read-only
            return []
        return [dict(r) | {"params": json.loads(r["params_json"])} for r in rows]

    def interrupt_runs(self, run_ids: Iterable[str] | None = None) -> list[str]:
        """Mark ``run_ids`` (default: every run) that are 'running' as 'interrupted': stopped
        by Ctrl-C, or left by a killed process (the caller holds the study's lock)."""
        running = {r for r, status in self.statuses().items() if status == "running"}
        chosen = sorted(running) if run_ids is None else [r for r in run_ids if r in running]
        with self._transaction():
            self.conn.executemany(
                "UPDATE runs SET status = 'interrupted', ended_at = ? WHERE run_id = ?",
                [(time.time(), r) for r in chosen],
            )
        return chosen

    def forget_runs(self, run_ids: Iterable[str]) -> None:
        """Forget what ``run_ids`` did: their epochs, summaries and artifacts go, and they
        are pending again (the next `cnnlab run` trains them afresh). The caller holds the
        study's lock and deletes their folders."""
        chosen = [(r,) for r in run_ids]
        with self._transaction():
            for table in ("epochs", "finals", "artifacts"):
                self.conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", chosen)
            self.conn.executemany(
                "UPDATE runs SET status = 'pending', error = NULL, started_at = NULL, "
                "ended_at = NULL, attempts = 0 WHERE run_id = ?",
                chosen,
            )

    def _put_artifacts(self, run_id: str, artifacts: Mapping[str, Path]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO artifacts (run_id, kind, path) VALUES (?, ?, ?)",
            [(run_id, kind, self._rel(path)) for kind, path in artifacts.items()],
        )

    # -- reading ---------------------------------------------------------------------------

    def artifacts(self, run_id: str) -> dict[str, Path]:
        rows = self.conn.execute("SELECT kind, path FROM artifacts WHERE run_id = ?", (run_id,))
        return {r["kind"]: self._abs(r["path"]) for r in rows}

    def results(self, only: Sequence[str] | None = None, all_runs: bool = False) -> StudyResults:
        """The study as last run: its expansion's runs in plan order (variants as written,
        seeds as listed), each with its latest state, and those of the earlier invocations
        that ran other ``--variants`` of it (see :mod:`report_plan`). ``only`` keeps just
        those run ids; ``all_runs`` appends every other stored run (earlier settings)."""
        return study_results(self.conn, self.root, only, all_runs, self.trials())

    def recorded_rounds(
        self, name: str, file_path: Path, file_text: str, overrides: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The rounds an earlier invocation of this same study grew its plan by."""
        path = str(Path(file_path).absolute())
        return recorded_rounds(self.conn, name, path, file_text, overrides)


def load_results(
    study_dir: Path, only: Sequence[str] | None = None, all_runs: bool = False
) -> StudyResults:
    """Read a study folder's results (see :meth:`Store.results`); the report's entry point."""
    with Store(study_dir, create=False) as store:
        results = store.results(only=only, all_runs=all_runs)
    if not is_locked(Path(study_dir)):  # no `cnnlab run` works there: nothing is running
        for run in results.runs:
            if run.status == "running":
                run.status = "interrupted"
    return results
