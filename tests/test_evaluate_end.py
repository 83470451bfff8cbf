"""evaluate = "end": the test split evaluated at a run's end only (and at the epochs a
shorter run is read from, and where the run stops early), for the same run and the same
final results as evaluating it after each epoch."""

from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pytest
from fresh import run_cnnlab
from study_helpers import write_study

from cnnlab.cli.app import main
from cnnlab.config.identity import run_identity
from cnnlab.config.schema import config_dict, make_config
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.store.database import load_results
from cnnlab.training.run import train_run


def _config(data_dir, **extra):
    settings = dict(
        model="mlp", dataset="mnist", data_dir=str(data_dir), epochs=3, batch_size=50,
        precision="fp32", device="cpu", optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
    )  # fmt: skip
    return make_config({**settings, **extra})


def _tested(history) -> list[bool]:
    return [row.test_acc is not None and row.test_loss is not None for row in history]


def test_the_end_only_trains_the_same_run_to_the_same_final_results(tmp_path, data_dir):
    each = train_run(_config(data_dir), tmp_path / "each")
    end = train_run(_config(data_dir, evaluate="end"), tmp_path / "end")
    assert _tested(each.history) == [True, True, True]
    assert _tested(end.history) == [False, False, True]
    assert [r.train_loss for r in end.history] == [r.train_loss for r in each.history]
    assert end.summary.final.test_acc == each.summary.final.test_acc
    assert end.summary.final.test_loss == each.summary.final.test_loss
    ours, theirs = (np.load(r.run_dir / "test_predictions.npz") for r in (end, each))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours.files)
    assert end.summary.best_test_epoch == 3  # the best of the epochs evaluated
    with open(end.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["test_acc"] != "" for r in rows] == [False, False, True]
    assert (end.run_dir / "curves.png").is_file()


def test_a_kept_checkpoint_and_an_early_stop_are_evaluated_and_val_is_each_epoch(
    tmp_path, data_dir
):
    kept = train_run(_config(data_dir, evaluate="end", keep_checkpoints=[1]), tmp_path / "kept")
    assert _tested(kept.history) == [True, False, True]  # epoch 1: a shorter run's end
    # 480 training images at batch 50: 9 steps an epoch, so 12 steps stop in epoch 2.
    stopped = train_run(
        _config(data_dir, evaluate="end", epochs=5, val_fraction=0.2, max_steps=12),
        tmp_path / "stopped",
    )
    assert stopped.summary.stopped_early and stopped.summary.epochs == 2
    assert _tested(stopped.history) == [False, True]
    assert all(row.val_acc is not None for row in stopped.history)


def test_the_default_keeps_the_ids_of_runs_stored_before_the_setting(data_dir):
    def identity(cfg):
        return run_identity(config_dict(cfg), {"name": "mlp", "args": {}})["settings"]

    assert "evaluate" not in identity(_config(data_dir))
    assert identity(_config(data_dir, evaluate="end"))["evaluate"] == "end"


def test_the_flag_refuses_anything_else_in_one_line(tmp_path, data_dir, capsys):
    args = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--evaluate", "never"])
    assert exc.value.code == 2
    assert "choose from 'each-epoch', 'end'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_study_of_nested_epochs_reads_its_shorter_variants_evaluated_at_their_ends(
    tmp_path, data_dir
):
    body = """
    [defaults]
    model = "mlp"
    batch_size = 50
    precision = "fp32"
    device = "cpu"
    evaluate = "end"
    schedule = { name = "step", step_every = 1, gamma = 0.5 }

    [[variant]]
    name = "1 epoch"
    epochs = 1

    [[variant]]
    name = "3 epochs"
    epochs = 3
    """
    study = write_study(tmp_path, body)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--quiet", "--workers", "1"]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    planned = {r.run_id: r for r in load_study(study, data_dir=data_dir).plan(out)}
    for run in load_results(out).runs:
        alone = train_run(planned[run.run_id].config, tmp_path / "alone" / run.run_id)
        assert run.summary.final.test_acc == alone.summary.final.test_acc
        expected = [True] if run.variant == "1 epoch" else [True, False, True]
        assert _tested(run.history) == expected  # the trunk's epoch 1 ends the shorter run
    assert "report-curves.png" in (out / "report.html").read_text()
    # When a variant reached the baseline's accuracy is not known without its test curve
    # (the 1-epoch variant's one epoch is its end, so its curve is whole).
    variants = {v["name"]: v for v in json.loads((out / "report.json").read_text())["variants"]}
    assert variants["3 epochs"]["time_to_baseline"] is None
    assert variants["1 epoch"]["time_to_baseline"]["epoch"] == 1


@pytest.mark.slow
def test_a_run_killed_after_an_epoch_without_test_figures_resumes_to_the_same_end(
    tmp_path, data_dir
):
    args = ["train", "--model", "mlp", "--dataset", "mnist", "--data-dir", str(data_dir)]
    args += ["--epochs", "2", "--batch-size", "50", "--precision", "fp32", "--evaluate", "end"]
    killed = run_cnnlab(
        [*args, "--out", str(tmp_path / "killed")], env={"CNNLAB_KILL_AT": "checkpoint@1"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_cnnlab(["train", "--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    whole = run_cnnlab([*args, "--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    metrics = [(tmp_path / d / "metrics.csv").read_text() for d in ("killed", "whole")]
    strip = [[line.split(",")[:8] for line in m.splitlines()] for m in metrics]
    assert strip[0] == strip[1]  # every figure but the timings
