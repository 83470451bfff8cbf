"""Nested epochs: variants that differ only in epochs train once per seed, to the longest,
and the shorter ones are read from its kept checkpoints, bit for bit what separate runs
give; a schedule that depends on the length trains them separately; their trend claims
pair the runs by seed (Page's test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from study_helpers import write_study

from cnnlab.claims.claim import Claim
from cnnlab.claims.verdicts import PAGE, judge_claims
from cnnlab.cli.app import main
from cnnlab.config.schema import make_config
from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.store.database import load_results
from cnnlab.training.run import start_from, train_run

HEADER = '[study]\nname = "epochs"\ndataset = "mnist"\nseeds = [0, 1]\n'


def _body(schedule: str) -> str:
    return f"""
[defaults]
batch_size = 50
precision = "fp32"
device = "cpu"
model = "mlp"
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
schedule = {schedule}

[[variant]]
name = "1 epoch"
epochs = 1

[[variant]]
name = "2 epochs"
epochs = 2

[[variant]]
name = "3 epochs"
epochs = 3

[[claim]]
says = "longer is better"
increasing = ["1 epoch", "2 epochs", "3 epochs"]
"""


STEP = '{ name = "step", step_every = 1, gamma = 0.5 }'


@pytest.mark.slow
def test_shorter_variants_are_read_from_one_run_per_seed_bit_for_bit(tmp_path, data_dir):
    study = write_study(tmp_path, _body(STEP), header=HEADER)
    plan = load_study(study, data_dir=data_dir)
    runs = plan.plan(tmp_path / "out")
    trunks = {r.run_id: r for r in runs if r.variant == "3 epochs"}
    assert all(t.config.keep_checkpoints == (1, 2) for t in trunks.values())
    assert all(r.trunk in trunks for r in runs if r.variant != "3 epochs")
    assert plan.epoch_families()[0]["one_run"] is True

    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--quiet", "--workers", "1"]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    results = load_results(out)
    for run in results.runs:
        if run.variant == "3 epochs":
            continue
        planned = next(r for r in runs if r.run_id == run.run_id)
        alone = train_run(planned.config, tmp_path / "alone" / run.run_id)
        assert run.summary.final.test_acc == alone.summary.final.test_acc
        assert run.summary.final.test_loss == alone.summary.final.test_loss
        rows = [(r.epoch, r.train_loss, r.test_loss) for r in run.history]
        assert rows == [(r.epoch, r.train_loss, r.test_loss) for r in alone.history]
        ours = np.load(run.run_dir / "test_predictions.npz")
        theirs = np.load(alone.run_dir / "test_predictions.npz")
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours.files)
    report = (out / "report.md").read_text()
    assert "differ only in epochs: each seed trained once" in report
    claim = json.loads((out / "report.json").read_text())["claims"][0]
    assert claim["test"] == PAGE


def test_a_schedule_that_depends_on_the_length_trains_each_separately(tmp_path, data_dir):
    study = write_study(tmp_path, _body('{ name = "cosine" }'), header=HEADER)
    plan = load_study(study, data_dir=data_dir)
    runs = plan.plan(tmp_path / "out")
    assert all(r.trunk is None and r.start_from is None for r in runs)
    assert all(r.config.keep_checkpoints == () for r in runs)
    (family,) = plan.epoch_families()
    assert family == {
        "variants": ["1 epoch", "2 epochs", "3 epochs"],
        "one_run": False,
        "why_separate": "the cosine schedule depends on the run's length",
    }


def _config(tmp_path, data_dir, **extra):
    settings = dict(
        model="mlp", dataset="mnist", data_dir=str(data_dir), epochs=2, batch_size=50,
        precision="fp32", device="cpu", schedule={"name": "step", "step_every": 1},
    )  # fmt: skip
    return make_config({**settings, **extra})


def test_a_finished_run_goes_on_for_more_epochs_as_if_asked_for_from_the_start(tmp_path, data_dir):
    short = train_run(_config(tmp_path, data_dir, epochs=1), tmp_path / "run")
    longer = train_run(_config(tmp_path, data_dir, epochs=3), tmp_path / "run", resume=True)
    direct = train_run(_config(tmp_path, data_dir, epochs=3), tmp_path / "direct")
    assert short.summary.epochs == 1 and longer.summary.epochs == 3
    assert longer.summary.final.test_loss == direct.summary.final.test_loss
    with pytest.raises(ConfigError, match="holds 3 epochs, more than the 2 asked"):
        train_run(_config(tmp_path, data_dir, epochs=2), tmp_path / "run", resume=True)
    cosine = {"name": "cosine"}
    train_run(_config(tmp_path, data_dir, epochs=1, schedule=cosine), tmp_path / "cos")
    with pytest.raises(
        ConfigError, match=r"its cosine learning-rate schedule depends on the run's length"
    ):
        train_run(
            _config(tmp_path, data_dir, epochs=2, schedule=cosine), tmp_path / "cos", resume=True
        )


def test_kept_checkpoints_are_not_part_of_the_run_and_a_missing_one_means_training(
    tmp_path, data_dir, capsys
):
    out = tmp_path / "trunk"
    args = ["train", "--model", "mlp", "--dataset", "mnist", "--data-dir", str(data_dir)]
    args += ["--epochs", "2", "--schedule", "step", "--step-every", "1", "--precision", "fp32"]
    assert main([*args, "--keep-checkpoints", "1", "--out", str(out)]) == 0
    assert (out / "checkpoint-epoch1.pt").is_file() and not (out / "checkpoint-epoch2.pt").exists()
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    ids = [
        json.loads((d / "summary.json").read_text())["run_id"] for d in (out, tmp_path / "plain")
    ]
    assert ids[0] == ids[1]
    cfg = _config(tmp_path, data_dir, epochs=1)
    start_from(cfg, tmp_path / "branch", out / "checkpoint-epoch7.pt")  # none kept there
    assert not (tmp_path / "branch").exists()  # nothing adopted: the run trains from scratch


def test_page_pairs_by_seed_where_kendall_sees_only_noise():
    """Each seed's runs rise along the list by a little, while seeds differ by a lot: the
    paired test sees the trend, the unpaired one cannot."""
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 0.05, 6)  # seed-to-seed spread
    by_seed = {v: {s: 0.9 + offsets[s] + 0.002 * i for s in range(6)} for i, v in enumerate("abc")}
    finals = {v: list(x.values()) for v, x in by_seed.items()}
    claim = Claim(says="rises", form="increasing", variants=("a", "b", "c"))
    (unpaired,) = judge_claims([claim], finals)
    (paired,) = judge_claims([claim], finals, by_seed=by_seed, paired=[["a", "b", "c"]])
    assert unpaired.p > 0.2 and paired.p < 0.01 and paired.test == PAGE
    assert paired.verdict == "supported"


def test_pages_test_keeps_its_level_under_the_null():
    """2,000 null data sets of 3 seeds x 4 variants: rejections <= alpha + 3 standard errors."""
    rng = np.random.default_rng(1)
    claim = Claim(says="rises", form="increasing", variants=("a", "b", "c", "d"))
    rejected = 0
    for _ in range(2000):
        by_seed = {v: {s: float(rng.normal()) for s in range(3)} for v in "abcd"}
        finals = {v: list(x.values()) for v, x in by_seed.items()}
        (v,) = judge_claims([claim], finals, by_seed=by_seed, paired=[list("abcd")])
        rejected += v.p_holm < 0.05
    assert rejected / 2000 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)
