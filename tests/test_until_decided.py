"""Seeds until decided, end to end on tiny learnable data: the looks' rounds, which
variants get seeds, a kill between a round's record and its runs, the report and the
terminal, and bad seeds tables."""

from __future__ import annotations

import json
import sqlite3

import pytest
from study_helpers import flat, write_study

from cnnlab.cli.app import main
from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.store.database import load_results

HEADER = '[study]\nname = "looks"\ndataset = "mnist"\n'
BODY = """
[defaults]
epochs = 1
batch_size = 50
precision = "fp32"
device = "cpu"
model = "mlp"

[[variant]]
name = "base"
optimizer = { name = "adam", lr = 1e-3 }

[[variant]]
name = "frozen"
optimizer = { name = "adam", lr = 1e-7 }

[[variant]]
name = "twin"
optimizer = { name = "adam", lr = 1.1e-3 }
"""
# Two looks, Pocock spending: a chance-level variant is decided at the first look, at 3
# seeds; one that learns like the baseline stays open to the last.
POCOCK = 'seeds = { looks = [3, 4], spending = "pocock" }\n'


def _seeds_by_variant(results) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in results.runs:
        out.setdefault(r.variant, []).append(r.seed)
    return {v: sorted(s) for v, s in out.items()}


@pytest.mark.slow
def test_a_decided_variant_stops_and_the_open_ones_get_the_next_looks_seeds(
    tmp_path, data_dir, capsys
):
    study = write_study(tmp_path, BODY, header=HEADER + POCOCK)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    printed = flat(capsys.readouterr().out)
    assert "3 seeds (until decided: looks at 3, 4 seeds)" in printed
    assert "look 1 of 2 (3 seeds): 1 of 2 claims and comparisons decided" in printed
    results = load_results(out)
    assert _seeds_by_variant(results) == {
        "base": [0, 1, 2, 3],
        "frozen": [0, 1, 2],
        "twin": [0, 1, 2, 3],
    }
    assert all(r.status == "done" for r in results.runs)
    report = (out / "report.md").read_text()
    assert "Seeds until decided" in report and "pocock-type" in report
    assert "| frozen |" in report.replace("**", "")
    numbers = json.loads((out / "report.json").read_text())
    verdicts = {v["name"]: v["vs_baseline"]["verdict"] for v in numbers["variants"]}
    assert verdicts == {"base": "baseline", "frozen": "worse", "twin": "within noise"}
    for v in numbers["variants"]:  # the adjusted p agrees with the verdict, as its interval
        c = v["vs_baseline"]
        if c["verdict"] != "baseline":
            assert (c["p_holm"] < 0.05) == (c["verdict"] == "worse")
            assert (c["diff_ci_high"] < 0) == (c["verdict"] == "worse")
    assert "worse" in printed and "sequentially adjusted p" in printed  # the terminal's verdicts

    again = main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir)])
    assert again == 0 and "0 runs trained now; skipped 11 done before" in flat(
        capsys.readouterr().out
    )


@pytest.mark.slow
def test_a_kill_between_a_looks_record_and_its_runs_resumes_that_look(tmp_path, data_dir):
    from fresh import run_cnnlab

    study = write_study(tmp_path, BODY, header=HEADER + POCOCK)
    out, whole = tmp_path / "out", tmp_path / "whole"
    args = ["run", str(study), "--data-dir", str(data_dir), "--quiet", "--workers", "1"]
    killed = run_cnnlab([*args, "--out", str(out)], env={"CNNLAB_KILL_AT": "round-recorded"})
    assert killed.returncode == -9, killed.stderr
    with sqlite3.connect(out / "study.sqlite") as conn:
        (plan_json,) = conn.execute("SELECT plan_json FROM studies ORDER BY id DESC").fetchone()
        (pending,) = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'pending'").fetchone()
    (round_,) = json.loads(plan_json)["rounds"]
    assert round_["kind"] == "seeds" and round_["seeds"] == [3]
    assert round_["seeded"] == ["twin", "base"] and pending == 2  # recorded, not begun

    assert main([*args, "--out", str(out)]) == 0
    assert main([*args, "--out", str(whole)]) == 0
    resumed, uninterrupted = load_results(out), load_results(whole)
    finals = {r.run_id: r.final_test_acc for r in uninterrupted.runs}
    assert {r.run_id: r.final_test_acc for r in resumed.runs} == finals
    assert len(finals) == 11


def test_until_decided_turns_a_seed_list_into_the_start_of_the_looks(tmp_path, data_dir):
    study = write_study(tmp_path, BODY, header=HEADER + "seeds = [5, 6, 7]\n")
    plan = load_study(study, data_dir=data_dir, until_decided=9)
    assert plan.design is not None and plan.design.looks == (3, 5, 9)
    assert plan.seed_pool == (5, 6, 7, 0, 1, 2, 3, 4, 8)  # the listed ones, then unused ones
    assert plan.overrides["until_decided"] == 9
    fixed = load_study(study, data_dir=data_dir)
    assert fixed.design is None and "until_decided" not in fixed.overrides


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("{ start = 1 }", "seeds.start: Input should be greater than or equal to 2"),
        ("{ start = 4, max = 3 }", "max (3) is below start (4)"),
        ("{ begin = 3 }", "seeds.begin: unknown key; allowed: start, max, looks"),
        ('{ spending = "linear" }', "seeds.spending: use one of obrien-fleming, pocock"),
        ("{ looks = [4, 3] }", "looks must be increasing seed counts from 2"),
    ],
)
def test_a_bad_seeds_table_is_one_line_naming_the_key(tmp_path, data_dir, table, fragment):
    study = write_study(tmp_path, BODY, header=HEADER + f"seeds = {table}\n")
    with pytest.raises(ConfigError) as caught:
        load_study(study, data_dir=data_dir)
    assert fragment in str(caught.value) and "[study]" in str(caught.value)


def test_max_seeds_without_until_decided_is_refused_in_one_line(tmp_path, data_dir, capsys):
    study = write_study(tmp_path, BODY, header=HEADER + "seeds = [0, 1]\n")
    assert main(["run", str(study), "--max-seeds", "6", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "cnnlab: error: --max-seeds goes with --until-decided; add it, or drop --max-seeds"
    ]


def test_the_cli_default_maximum_is_the_study_files():
    from cnnlab.cli.run_command import DEFAULT_MAX as cli
    from cnnlab.study.plan.seed_design import DEFAULT_MAX as plan

    assert cli == plan
