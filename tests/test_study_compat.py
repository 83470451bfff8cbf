"""Study folders made by earlier versions stay valid: run ids, records and resuming.

tests/data/study-v1 was written by cnnlab before the typed-records refactor (commit
1033250; remake it with tests/data/make_study_v1.py): variant 'small' done, 'wider' not
run yet.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from cnnlab.cli import main
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.store.database import load_results
from cnnlab.study.store.sqlite_schema import DB_NAME, SCHEMA_VERSION

DATA = Path(__file__).parent / "data"
STUDY = DATA / "study-v1.toml"


def copy_of_v1(tmp_path: Path) -> Path:
    out = tmp_path / "study"
    shutil.copytree(DATA / "study-v1", out)
    return out


def test_a_v1_study_folder_reads_as_typed_records_with_the_same_run_ids(tmp_path):
    out = copy_of_v1(tmp_path)
    results = load_results(out)
    (small,) = [r for r in results.runs if r.status == "done"]
    assert small.variant == "small" and small.summary is not None
    assert small.summary.final.test_acc == small.history[-1].test_acc > 0.5
    assert small.summary.epochs == len(small.history) == 1
    planned = {r.variant: r.run_id for r in load_study(STUDY).plan(out)}
    assert small.run_id == planned["small"]  # the identity hash did not move


def test_a_v1_study_folder_resumes_without_training_its_finished_run(data_dir, tmp_path, capsys):
    out = copy_of_v1(tmp_path)
    done_before = next(out.glob("runs/small-*"))
    stamps = {p.name: p.stat().st_mtime_ns for p in done_before.iterdir()}
    args = ["run", str(STUDY), "--out", str(out), "--data-dir", str(data_dir), "--quiet"]
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 run trained now; skipped 1 done before" in printed
    assert {p.name: p.stat().st_mtime_ns for p in done_before.iterdir()} == stamps
    runs = {r.variant: r for r in load_results(out).runs}
    assert (runs["small"].status, runs["small"].attempts) == ("done", 1)
    assert runs["wider"].status == "done" and runs["wider"].summary is not None
    assert (out / "report.html").is_file()
    # The database was upgraded to schema 4 in place: the old run kept its rows (no
    # provenance: it was not recorded then), the new one has its provenance in the store
    # and in its summary, and its summary names the store's run id.
    with sqlite3.connect(out / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0  # the new table
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 2
    assert runs["small"].provenance is None and runs["small"].summary.run_id is None
    wider = runs["wider"]
    assert wider.provenance is not None and wider.provenance == wider.summary.provenance
    assert wider.summary.run_id == wider.run_id
    assert wider.provenance.torch and wider.provenance.host and wider.provenance.started
