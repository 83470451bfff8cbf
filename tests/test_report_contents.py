"""What a report says a variant is and where its runs came from, and the per-run CSV,
on a small study run through the real CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from cnnlab.cli import main

STUDY = """\
[study]
name = "what-is-what"
dataset = "mnist"
seeds = [0, 1]
baseline = "plain"

[defaults]
data_dir = "{data_dir}"
model = "mlp"
epochs = 1
batch_size = 64
optimizer = {{ name = "adam", lr = 0.001 }}

[[variant]]
name = "plain"

[[variant]]
name = "faster"
optimizer = {{ name = "adam", lr = 0.003 }}
augment = "translate=0.1"
"""


@pytest.fixture(scope="module")
def study_out(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("contents")
    study = root / "study.toml"
    study.write_text(STUDY.format(data_dir=data_dir))
    out = root / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    return out


@pytest.mark.slow
def test_report_says_what_each_variant_is_and_shows_the_study_file(study_out, capsys):
    assert main(["report", str(study_out), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    faster = next(v for v in numbers["variants"] if v["name"] == "faster")
    assert sorted(faster["settings_vs_baseline"], key=lambda d: d["key"]) == [
        {"key": "augment", "a": "", "b": "translate=0.1"},
        {"key": "optimizer.lr", "a": 0.001, "b": 0.003},
    ]
    assert numbers["baseline_settings"]["model"] == "mlp"
    assert "seed" not in numbers["baseline_settings"]
    assert numbers["study"]["file_text"].startswith('[study]\nname = "what-is-what"')
    assert main(["report", str(study_out), "--no-predictions"]) == 0
    capsys.readouterr()
    html = (study_out / "report.html").read_text()
    assert "augment:  → translate=0.1; optimizer.lr: 0.001 → 0.003" in html
    assert "The study file as it was run" in html and "what-is-what" in html
    md = (study_out / "report.md").read_text()
    assert "## What each variant is" in md and "## Provenance" in md


def test_every_run_carries_its_provenance_into_the_report(study_out, capsys):
    assert main(["report", str(study_out), "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert len(runs) == 4
    for run in runs:
        p = run["provenance"]
        assert p["device"].startswith("cpu") and p["torch"] and p["host"] and p["started"]
    assert main(["report", str(study_out), "--no-predictions"]) == 0
    html = (study_out / "report.html").read_text()
    assert 'id="provenance"' in html and runs[0]["provenance"]["host"] in html


def test_csv_has_one_row_per_run_with_settings_metrics_times_and_provenance(study_out, capsys):
    assert main(["report", str(study_out), "--format", "csv"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("plain", "0"), ("plain", "1"), ("faster", "0"), ("faster", "1")
    ]  # fmt: skip
    header = next(csv.reader(io.StringIO(text)))
    for column in (
        "setting.optimizer.lr", "setting.augment", "setting.model", "setting.epochs",
        "final_test_acc", "final_train_loss", "wall_seconds", "images_per_s",
        "provenance.torch", "provenance.host", "provenance.git_commit",
    ):  # fmt: skip
        assert column in header, column
    assert {r["setting.optimizer.lr"] for r in rows} == {"0.001", "0.003"}
    assert all(0.0 < float(r["final_test_acc"]) <= 1.0 for r in rows)
    assert all(float(r["wall_seconds"]) > 0 and r["status"] == "done" for r in rows)
    assert len({r["run_id"] for r in rows}) == 4


def test_epochs_csv_has_one_row_per_epoch_and_pandas_reads_it(study_out, capsys):
    assert main(["report", str(study_out), "--format", "epochs-csv"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text)))
    header = next(csv.reader(io.StringIO(text)))
    assert header[:6] == ["study", "variant", "seed", "run_id", "status", "epoch"]
    assert {"test_acc", "train_loss", "lr", "images_per_s"} <= set(header)
    runs = {r["run_id"] for r in rows}
    assert len(runs) == 4 and len(rows) == 4  # 1 epoch each
    assert {r["epoch"] for r in rows} == {"1"} and rows[0]["study"] == "what-is-what"
    pandas = pytest.importorskip("pandas")
    table = pandas.read_csv(io.StringIO(text))
    assert table.shape == (4, len(header)) and table["test_acc"].between(0, 1).all()
    assert table.groupby("variant")["run_id"].nunique().to_dict() == {"faster": 2, "plain": 2}
    runs_table = pandas.read_csv(io.StringIO(_csv_of(study_out, capsys)))
    assert len(runs_table) == 4 and runs_table["final_test_acc"].between(0, 1).all()


def _csv_of(study_out, capsys) -> str:
    assert main(["report", str(study_out), "--format", "csv"]) == 0
    return capsys.readouterr().out


def test_the_best_variant_is_chosen_on_validation_when_there_is_one(tmp_path):
    import dataclasses

    from test_report import fake_study

    from cnnlab.analysis.study_analysis import analyze

    results = fake_study(tmp_path, {"base": [0.90, 0.91, 0.92], "new": [0.93, 0.94, 0.95]})
    numbers = analyze(results)
    assert (numbers.best_variant, numbers.best_variant_by) == ("new", "test")
    assert any("picked as the best variant by its test accuracy" in s for s in numbers.summary)
    assert len(numbers.to_json()["peeks_at_test_set"]) == 2

    for run in results.runs:  # validation says the baseline generalises better
        val = 0.99 if run.variant == "base" else 0.80
        final = dataclasses.replace(run.summary.final, val_acc=val, val_loss=0.1)
        run.summary = dataclasses.replace(run.summary, final=final)
    numbers = analyze(results)
    assert (numbers.best_variant, numbers.best_variant_by) == ("base", "validation")
    assert not any("by its test accuracy" in s for s in numbers.summary)
    assert len(numbers.to_json()["peeks_at_test_set"]) == 1
