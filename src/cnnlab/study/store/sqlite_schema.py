"""The study database's tables (see :mod:`cnnlab.study.store.database` for what each holds)."""

from __future__ import annotations

from cnnlab.records import EPOCH_COLUMNS
from cnnlab.study.store.results import RUN_STATUSES

DB_NAME = "study.sqlite"
SCHEMA_VERSION = 4
# Version 2: the 'interrupted' status and each run's provenance. Version 3: the 'pruned'
# status (a search trial stopped early by its pruner) and the search's trials table.
# Version 4: each invocation's plan (study_plan.Study.stored: variants, claims, rounds).
# Upgrading from 1 or 2 rebuilds the runs table (SQLite cannot change a CHECK constraint
# in place).
RUNS_V1_COLUMNS = (
    "run_id, variant, seed, config_json, config_hash, identity_json, status, started_at,"
    " ended_at, device, error, run_dir, attempts"
)
RUNS_V2_COLUMNS = RUNS_V1_COLUMNS + ", provenance_json"
VALUE_COLUMNS = EPOCH_COLUMNS[1:]


def runs_table(name: str) -> str:
    return RUNS_TABLE.format(name=name, statuses=", ".join(repr(s) for s in RUN_STATUSES))


RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    run_id        TEXT PRIMARY KEY,
    variant       TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    config_json   TEXT NOT NULL,   -- the TrainConfig given to train(), model_dump(mode="json")
    config_hash   TEXT NOT NULL,   -- sha256 of identity_json; run_id is its first 16 hex
    identity_json TEXT NOT NULL,   -- the location-free settings the hash covers
    status        TEXT NOT NULL CHECK (status IN ({statuses})),
    started_at    REAL,            -- unix time, start of the latest attempt
    ended_at      REAL,
    device        TEXT NOT NULL DEFAULT '',
    error         TEXT,
    run_dir       TEXT NOT NULL,   -- relative to the study folder when inside it
    attempts      INTEGER NOT NULL DEFAULT 0,
    provenance_json TEXT           -- records.Provenance of the latest attempt, at its start
);
"""
RUNS = runs_table("runs")
TRIALS = """
CREATE TABLE IF NOT EXISTS trials (
    number      INTEGER PRIMARY KEY,  -- Optuna's trial number
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    params_json TEXT NOT NULL,        -- {"optimizer.lr": 0.0021, ...}
    state       TEXT NOT NULL,        -- running, complete, pruned, failed
    objective   REAL                  -- its final objective (val_acc or val_loss)
);
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS studies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    file_path     TEXT NOT NULL,
    file_text     TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    baseline      TEXT,
    description   TEXT NOT NULL DEFAULT '',
    variants_json TEXT NOT NULL,   -- expanded variant names, in order
    options_json  TEXT NOT NULL,   -- command-line overrides (dataset, seeds, epochs_scale, data_dir)
    created       REAL NOT NULL,
    plan_json     TEXT             -- the plan with its rounds (schema 4 on; NULL before)
);
CREATE TABLE IF NOT EXISTS plan (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    position INTEGER NOT NULL,
    run_id   TEXT NOT NULL,
    variant  TEXT NOT NULL,
    seed     INTEGER NOT NULL,
    PRIMARY KEY (study_id, position)
);
{RUNS}CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    epoch  INTEGER NOT NULL,
    {", ".join(f"{c} REAL" for c in VALUE_COLUMNS)},
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS finals (
    run_id       TEXT PRIMARY KEY REFERENCES runs(run_id),
    summary_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    kind   TEXT NOT NULL,
    path   TEXT NOT NULL,
    PRIMARY KEY (run_id, kind)
);
{TRIALS}"""


def upgrade_from(version: int) -> str:
    """The script that brings a version-1, -2 or -3 database to this version."""
    plan = "ALTER TABLE studies ADD COLUMN plan_json TEXT;"
    if version == 3:
        return plan
    columns = RUNS_V1_COLUMNS if version == 1 else RUNS_V2_COLUMNS
    return f"""
{runs_table("runs_new")}
INSERT INTO runs_new ({columns}) SELECT {columns} FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
{TRIALS}{plan}"""
