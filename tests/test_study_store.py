"""Studies: the SQLite store, a study killed mid-run resuming to the uninterrupted result,
and what old study folders and bad defaults do."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from study_helpers import (  # noqa: F401 (autouse fixtures)
    GOOD_VARIANTS,
    TINY_DEFAULTS,
    _no_curve_plots,
    _one_thread,
    cnnlab,
    cnnlab_process,
    db_rows,
    flat,
    write_study,
)

from cnnlab.cli import main
from cnnlab.errors import CnnlabError, ConfigError, DataError
from cnnlab.records import EPOCH_COLUMNS, EpochRow, summarize_history
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.runner import record_study, run_study
from cnnlab.study.store.database import Store, StudyRecord, load_results

# ---------------------------------------------------------------------------------------------
# The store


def test_store_epochs_table_has_the_record_columns(tmp_path):
    with Store(tmp_path) as store:
        columns = [r["name"] for r in store.conn.execute("PRAGMA table_info(epochs)")]
    assert columns == ["run_id", *EPOCH_COLUMNS]


def summary_of(history: list[EpochRow]):
    return summarize_history(
        history, model="lenet5", dataset="mnist", seed=0, stopped_early=False, params=1,
        macs_per_image=1, input_shape=[1, 28, 28], classes=["0", "1"], precision="fp32",
        train_seconds=1.0, step_seconds=0.5, eval_seconds=0.1,
    )  # fmt: skip


def test_store_round_trip(tmp_path):
    path = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    study = load_study(path)
    out = tmp_path / "out"
    runs = study.plan(out)
    values = {c: float(i) / 10 for i, c in enumerate(EPOCH_COLUMNS)}
    row = values | {"val_loss": None, "val_acc": None}

    def epoch(**changes) -> EpochRow:
        return EpochRow.from_dict(row | changes)

    with Store(out) as store:
        record_study(store, study, runs)
        assert set(store.statuses().values()) == {"pending"}
        store.start_run(runs[0].run_id, "cpu fp32 NCHW")
        store.add_epoch(runs[0].run_id, epoch(epoch=1))
        store.add_epoch(runs[0].run_id, epoch(epoch=1, test_acc=0.5))  # overwritten
        store.add_epoch(runs[0].run_id, epoch(epoch=2))
        history = [epoch(epoch=1), epoch(epoch=2, test_acc=0.75)]
        summary = summary_of(history)
        store.finish_run(runs[0].run_id, summary, history, {"metrics": runs[0].run_dir / "m.csv"})
        store.start_run(runs[1].run_id, "cpu")
        store.fail_run(runs[1].run_id, "training diverged")

    results = load_results(out)
    assert (results.name, results.dataset, results.baseline) == ("tiny", "mnist", "a")
    assert results.variants == ["a", "+dropout"] and results.study_dir == out.absolute()
    assert [(r.variant, r.seed, r.status) for r in results.runs] == [
        ("a", 0, "done"), ("a", 1, "failed"), ("+dropout", 0, "pending"), ("+dropout", 1, "pending"),
    ]  # fmt: skip
    done = results.runs[0]
    assert done.history == history and done.history[1].test_acc == 0.75
    assert done.history[0].val_acc is None and isinstance(done.history[0].epoch, int)
    assert done.summary == summary and done.final_test_acc == 0.75
    assert done.config == runs[0].config.model_dump(mode="json")
    assert done.run_dir == runs[0].run_dir and done.device == "cpu fp32 NCHW"
    assert done.started_at <= done.ended_at and done.attempts == 1
    assert results.runs[1].error == "training diverged" and results.runs[1].summary is None
    assert [r.run_id for r in load_results(out, only=[runs[2].run_id]).runs] == [runs[2].run_id]

    # A changed setting: the new expansion is what results show; old runs stay stored.
    changed = load_study(
        write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS + "label_smoothing = 0.1\n")
    )
    new_runs = changed.plan(out)
    with Store(out) as store:
        record_study(store, changed, new_runs)
    current = load_results(out)
    assert [r.run_id for r in current.runs] == [r.run_id for r in new_runs]
    assert current.runs[0].status == "done"  # variant 'a' did not change
    everything = load_results(out, all_runs=True)
    assert len(everything.runs) == 6 and everything.variants == ["a", "+dropout"]

    # The folder moves: paths are stored relative to it.
    shutil.move(out, tmp_path / "moved")
    assert load_results(tmp_path / "moved").runs[0].run_dir == tmp_path / "moved" / runs[
        0
    ].run_dir.relative_to(out)
    with pytest.raises(CnnlabError, match="no study results here"):
        load_results(tmp_path / "nothing")
    with (
        Store(tmp_path / "moved") as store,
        pytest.raises(CnnlabError, match="holds results of study 'tiny'"),
    ):
        store.record_study(
            StudyRecord(
                name="other",
                file_path=path,
                file_text="",
                dataset="mnist",
                baseline=None,
                description="",
                variants=[],
                options={},
            ),
            [],
        )


def test_a_study_run_a_few_variants_at_a_time_reports_them_all(tmp_path):
    path = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    out = tmp_path / "out"

    def record(**overrides):
        study = load_study(path, **overrides)
        with Store(out) as store:
            record_study(store, study, study.plan(out))
        return study

    record(variants=["+dropout"])
    assert load_results(out).baseline == "+dropout"  # the only variant run so far
    full = record()
    record(variants=["+dropout"])  # the latest invocation ran one variant; the folder has two
    results = load_results(out)
    assert results.variants == ["a", "+dropout"] and results.baseline == "a" == full.baseline
    assert {r.run_id for r in results.runs} == {r.run_id for r in full.plan(out)}
    assert len(results.runs) == 4

    # Other seeds are another study of the same file: its runs are not mixed in.
    record(variants=["+dropout"], seeds=[7])
    results = load_results(out)
    assert [(r.variant, r.seed) for r in results.runs] == [("+dropout", 7)]


# ---------------------------------------------------------------------------------------------
# The kill test


@pytest.mark.slow
def test_a_killed_study_resumes_to_the_results_of_an_uninterrupted_one(data_dir, tmp_path, capsys):
    """SIGKILL `cnnlab run` mid-study; the rerun must end exactly where an
    uninterrupted run of the same study ends: the same (run, epoch) rows, none twice,
    the same numbers."""
    study = write_study(
        tmp_path,
        f"""
        [defaults]
        data_dir = "{data_dir}"
        epochs = 3
        batch_size = 30
        eval_batch_size = 200
        precision = "fp32"
        device = "cpu"

        [[variant]]
        name = "mlp"
        model = "mlp"

        [[variant]]
        name = "wide mlp"
        model = "mlp"
        model_args = {{ hidden = [128, 64] }}
        augment = "translate=0.1"
        """,
    )
    killed = tmp_path / "killed"
    args = ("run", str(study), "--out", str(killed), "--no-report")

    def epochs_stored() -> int:
        try:
            return db_rows(killed, "SELECT COUNT(*) FROM epochs")[0][0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    proc = cnnlab_process(*args)
    deadline = time.monotonic() + 120
    while epochs_stored() < 4:  # the first run done, the second one in its epoch 2
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    statuses = [s for (s,) in db_rows(killed, "SELECT status FROM runs ORDER BY rowid")]
    assert statuses == ["done", "running", "pending", "pending"]
    # The database still says running (nothing could write after SIGKILL); with no
    # `cnnlab run` holding the folder, readers are told the truth.
    assert [r.status for r in load_results(killed).runs] == [
        "done", "interrupted", "pending", "pending"
    ]  # fmt: skip

    # Start again (in this process, through the same CLI entry point) and let it finish.
    assert main([*args, "--quiet"]) == 0
    assert "3 runs trained now; skipped 1 done before" in flat(capsys.readouterr().out)

    reference = tmp_path / "reference"
    run_study(load_study(study), reference)

    def numbers(study_dir: Path):
        epochs = db_rows(
            study_dir,
            "SELECT run_id, epoch, lr, train_loss, train_acc, test_loss, test_acc FROM epochs "
            "ORDER BY run_id, epoch",
        )
        finals = {
            run_id: json.loads(text)["final"]
            for run_id, text in db_rows(study_dir, "SELECT run_id, summary_json FROM finals")
        }
        return epochs, finals

    resumed_epochs, resumed_finals = numbers(killed)
    ref_epochs, ref_finals = numbers(reference)
    assert len(ref_epochs) == 4 * 3
    assert [(r, e) for r, e, *_ in resumed_epochs] == [(r, e) for r, e, *_ in ref_epochs]
    assert resumed_epochs == ref_epochs  # every number, exactly
    assert resumed_finals == ref_finals
    runs = load_results(killed).runs
    assert [(r.status, r.attempts) for r in runs] == [
        ("done", 1),
        ("done", 2),
        ("done", 1),
        ("done", 1),
    ]


def test_settings_added_later_keep_old_run_ids_at_their_defaults():
    from cnnlab.config.schema import config_dict, make_config
    from cnnlab.study.plan.study_file import SETTINGS_ADDED_SINCE_V1, run_identity

    spec = {"name": "lenet5", "args": {}}
    plain = run_identity(config_dict(make_config({})), spec)["settings"]
    assert not set(SETTINGS_ADDED_SINCE_V1) & set(plain)
    old_keys = {"name", "lr", "momentum", "nesterov", "weight_decay", "betas"}
    assert set(plain["optimizer"]) == old_keys  # the optimizer's new keys left out too
    averaged = run_identity(config_dict(make_config({"ema_decay": 0.99, "tta": "flip"})), spec)
    assert averaged["settings"]["ema_decay"] == 0.99 and averaged["settings"]["tta"] == "flip"
    muon = make_config({"optimizer": {"name": "muon", "lr": 0.4, "muon_lr": 0.1}})
    assert run_identity(config_dict(muon), spec)["settings"]["optimizer"]["muon_lr"] == 0.1


def test_a_bad_default_is_reported_once_as_the_defaults_own(tmp_path):
    body = "[defaults]\noptimizer = { lr = -1 }\n" + GOOD_VARIANTS
    path = write_study(tmp_path / "studies", body)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text and "[defaults]: optimizer.lr = -1" in text and "(line 6)" in text


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('[study]\nname = "x"\ndataset = "mnist"\nseeds = [-1]\n', "[study]: seeds.0 = -1"),
        ('[study]\nname = "x"\ndataset = "mnist"\nseeds = [4294967296]\n', "[study]: seeds.0"),
    ],
)
def test_seeds_are_small_non_negative_integers(header, message, tmp_path):
    path = write_study(tmp_path / "studies", GOOD_VARIANTS, header=header)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_study(path)


def test_a_new_study_that_cannot_start_creates_nothing(tmp_path):
    path = write_study(tmp_path / "studies", TINY_DEFAULTS + GOOD_VARIANTS)
    study = load_study(path, data_dir=tmp_path / "no-data")
    with pytest.raises(DataError, match="mnist: dataset not found"):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # no lock, no empty database


def test_reading_a_database_without_cnnlab_tables_changes_nothing(tmp_path):
    import sqlite3

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "study.sqlite").write_bytes(b"")
    with pytest.raises(CnnlabError, match="not a cnnlab study database"):
        load_results(tmp_path / "empty")
    assert (tmp_path / "empty" / "study.sqlite").read_bytes() == b""  # no schema written
    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / "study.sqlite") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(CnnlabError, match="not a cnnlab study database"):
        load_results(tmp_path / "other")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "study.sqlite").write_text("hello, not a database" * 100)
    with pytest.raises(CnnlabError, match="not a readable study database"):
        load_results(tmp_path / "text")
