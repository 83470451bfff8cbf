"""[[claim]] tables: parsed and checked against the variants, and a verdict for each."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from scipy import stats as sps

from cnnlab import stats
from cnnlab.claims.claim import Claim, parse_claims
from cnnlab.claims.verdicts import (
    CONTRADICTED,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    judge_claims,
)
from cnnlab.cli import main
from cnnlab.config.problems import Problems
from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study

NAMES = ["a", "b", "c", "d"]


def parse(*entries: dict) -> tuple[list[Claim], list[str]]:
    problems = Problems("study.toml", "")
    return parse_claims(list(entries), NAMES, problems), problems.lines


def test_each_form_parses():
    claims, problems = parse(
        {"says": "a beats b", "better": "a", "than": "b", "evidence": "one run: 99.2 vs 98.9"},
        {"says": "b trails c", "worse": "b", "than": "c"},
        {"says": "a and d alike", "same": ["a", "d"], "margin": 0.3},
        {"says": "rises", "increasing": ["a", "b", "c"]},
        {"says": "falls", "decreasing": ["c", "b", "a"]},
        {"says": "peaks at b", "peak": "b", "over": ["a", "b", "c", "d"]},
    )
    assert problems == []
    assert [c.form for c in claims] == [
        "better",
        "worse",
        "same",
        "increasing",
        "decreasing",
        "peak",
    ]
    assert claims[0].variants == ("a", "b") and claims[0].evidence.startswith("one run")
    assert claims[2].margin == 0.3 and claims[5].peak == "b"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"better": "a", "than": "b"}, 'needs says = "the conclusion'),
        ({"says": "x", "better": "a"}, 'better = "A" needs than = "B"'),
        ({"says": "x", "better": "a", "than": "b", "worse": "c"}, "exactly one of"),
        ({"says": "x"}, "exactly one of better, worse, same"),
        ({"says": "x", "same": ["a", "b"]}, "same needs margin"),
        ({"says": "x", "same": ["a"], "margin": 1}, 'same = ["A", "B"] names two variants'),
        ({"says": "x", "increasing": ["a", "b"]}, "three or more variants"),
        ({"says": "x", "peak": "a", "over": ["a", "b", "c"]}, "must be inside over"),
        ({"says": "x", "better": "a", "than": "bb"}, "no variant 'bb' (did you mean 'b'?)"),
        ({"says": "x", "better": "a", "than": "b", "margn": 1}, "unknown key 'margn'"),
        ({"says": "x", "better": "a", "than": "b", "margin": 1}, "margin belongs to same"),
        ({"says": "x", "increasing": ["a", "b", "a"]}, "a variant is named twice"),
    ],
)
def test_bad_claims_are_one_line_each(entry, fragment):
    claims, problems = parse(entry)
    assert claims == [] and len(problems) >= 1
    assert any(fragment in line for line in problems), problems


def test_a_study_file_with_bad_claims_is_refused_before_anything_runs(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        '[study]\nname = "s"\ndataset = "mnist"\nseeds = [0]\n'
        '[[variant]]\nname = "plain"\nmodel = "mlp"\n[[variant]]\nname = "bn"\nmodel = "lenet5"\n'
        '[[claim]]\nsays = "BN helps"\nbetter = "BN"\nthan = "plain"\n'
        '[[claim]]\nsays = "alike"\nsame = ["plain", "bn"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_study(path)
    text = str(caught.value)
    assert "2 problems" in text and "(line 11): claim 'BN helps': no variant 'BN'" in text
    assert "(line 15): claim 'alike': same needs margin" in text
    good = (
        path.read_text()
        .replace('"BN"', '"bn"')
        .replace('same = ["plain", "bn"]', 'same = ["plain", "bn"]\nmargin = 0.5')
    )
    path.write_text(good)
    assert [c.form for c in load_study(path).claims] == ["better", "same"]


def claim(form: str, *variants: str, **extra) -> Claim:
    return Claim(says=f"{form} claim", form=form, variants=variants, **extra)


FINALS = {
    "low": [0.900, 0.902, 0.899, 0.901, 0.903],
    "mid": [0.910, 0.912, 0.909, 0.911, 0.913],
    "high": [0.920, 0.922, 0.919, 0.921, 0.923],
    "low-twin": [0.901, 0.899, 0.902, 0.900, 0.903],
    "one": [0.95],
}


@pytest.mark.parametrize(
    ("c", "verdict"),
    [
        (claim("better", "high", "low"), SUPPORTED),
        (claim("better", "low", "low-twin"), NOT_SUPPORTED),
        (claim("better", "low", "high"), CONTRADICTED),
        (claim("worse", "low", "high"), SUPPORTED),
        (claim("worse", "high", "low"), CONTRADICTED),
        (claim("same", "low", "low-twin", margin=0.5), SUPPORTED),
        (claim("same", "low", "high", margin=0.5), CONTRADICTED),
        (claim("same", "low", "low-twin", margin=0.01), NOT_SUPPORTED),
        (claim("increasing", "low", "mid", "high"), SUPPORTED),
        (claim("increasing", "high", "mid", "low"), CONTRADICTED),
        (claim("decreasing", "high", "mid", "low"), SUPPORTED),
        (claim("increasing", "low", "low-twin", "low"), NOT_SUPPORTED),
        (claim("peak", "low", "high", "mid", peak="high"), SUPPORTED),
        (claim("peak", "low", "mid", "high", peak="mid"), CONTRADICTED),
        (claim("better", "one", "low"), NOT_MEASURED),
        (claim("better", "high", "never run"), NOT_MEASURED),
    ],
)
def test_each_claim_form_and_verdict(c, verdict):
    (v,) = judge_claims([c], FINALS)
    assert v.verdict == verdict, v.reason
    assert v.reason or verdict == NOT_MEASURED
    if "never run" in c.variants:
        assert "'never run' not run in this folder" in v.reason


def test_a_peak_is_contradicted_only_by_a_side_that_goes_the_wrong_way_beyond_noise():
    # after the peak every run is higher: Kendall's p 0.0495 alone, 0.099 doubled
    rising = {"a": [0.90, 0.901, 0.902], "b": [0.92, 0.921, 0.922], "c": [0.93, 0.931, 0.932]}
    (v,) = judge_claims([claim("peak", "a", "b", "c", peak="b")], rising)
    assert v.verdict == NOT_SUPPORTED and v.wrong_side == "after", v.reason
    assert v.p_holm == pytest.approx(0.099, abs=1e-3)

    (v,) = judge_claims([claim("peak", "low", "mid", "high", peak="mid")], FINALS)
    x = np.repeat([0, 1], 5)
    after = sps.kendalltau(x, FINALS["mid"] + FINALS["high"]).pvalue
    assert v.p == pytest.approx(2 * after) and v.verdict == CONTRADICTED
    assert "after 'mid' they rise instead of falling" in v.reason
    (v,) = judge_claims([claim("peak", "high", "low", "mid", peak="low")], FINALS)
    assert v.verdict == CONTRADICTED and "up to 'low' they fall" in v.reason


def test_the_tests_are_scipys_and_the_claims_are_one_holm_family():
    a, b = judge_claims(
        [claim("better", "high", "low"), claim("increasing", "low", "mid", "high")], FINALS
    )
    assert a.p == pytest.approx(
        sps.ttest_ind(FINALS["high"], FINALS["low"], equal_var=False).pvalue
    )
    x = np.repeat([0, 1, 2], 5)
    y = FINALS["low"] + FINALS["mid"] + FINALS["high"]
    assert b.p == pytest.approx(sps.kendalltau(x, y).pvalue)
    ranked = sorted([a.p, b.p])
    assert max(a.p_holm, b.p_holm) == pytest.approx(max(2 * ranked[0], ranked[1]))
    assert a.improvement["estimate"] == 1.0 and "as claimed" in a.reason


@pytest.mark.slow
def test_claims_reach_the_report_through_the_cli(data_dir, tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(
        f'[study]\nname = "claims"\ndataset = "mnist"\nseeds = [0, 1]\nbaseline = "mlp"\n'
        f'[defaults]\ndata_dir = "{data_dir}"\nepochs = 1\nmodel = "mlp"\n'
        '[[variant]]\nname = "mlp"\n[[variant]]\nname = "tiny lr"\noptimizer = { name = "sgd", lr = 1e-5 }\n'
        '[[claim]]\nsays = "Adam beats SGD at lr 1e-5 (made up: 97% vs 10%)"\n'
        'evidence = "one run each"\nbetter = "mlp"\nthan = "tiny lr"\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--format", "json"]) == 0
    (c,) = json.loads(capsys.readouterr().out)["claims"]
    assert c["claim"]["form"] == "better" and c["verdict"] in (SUPPORTED, NOT_SUPPORTED)
    assert c["seeds"] == {"mlp": 2, "tiny lr": 2}
    html = (out / "report.html").read_text()
    assert 'id="claims"' in html and "Adam beats SGD" in html and "2 seeds, 1 epoch" in html
    # The claims are the stored plan's: the file's text (shown in the report) is not parsed.
    with sqlite3.connect(out / "study.sqlite") as conn:
        conn.execute("UPDATE studies SET file_text = 'not [TOML'")
    assert main(["report", str(out), "--format", "json"]) == 0
    (again,) = json.loads(capsys.readouterr().out)["claims"]
    assert again["claim"] == c["claim"] and again["verdict"] == c["verdict"]

    # A folder that ran only some variants still lists the claim, as not measured.
    only = tmp_path / "only-mlp"
    assert main(["run", str(study), "--out", str(only), "--variants", "mlp", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(only), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (c,) = report["claims"]
    assert c["verdict"] == NOT_MEASURED and "'tiny lr' not run in this folder" in c["reason"]
    assert "Claims: 1; 1 not measured." in report["summary"]
    assert main(["report", str(only), "--no-predictions"]) == 0
    html = (only / "report.html").read_text()
    assert "not run in this folder" in html and "Tests: ." not in html  # no test was run


def test_the_chance_in_a_claims_row_names_who_beats_whom():
    from cnnlab.analysis.tables import _claim_measure

    better, worse = judge_claims(
        [claim("better", "high", "low"), claim("worse", "low", "high")], FINALS
    )
    # Both claims say "high beats low": the chance is that, named, not the first variant's.
    assert "P('high' beats 'low') 100%" in _claim_measure(better)
    assert "P('high' beats 'low') 100%" in _claim_measure(worse)


def test_a_same_claim_on_a_variant_and_the_baseline_leaves_its_comparison_tested(tmp_path):
    # The equivalence test is another test: the comparison row keeps its difference test
    # (it read "not enough runs" with five runs a side while the claim was judged).
    from test_report import fake_study

    from cnnlab.analysis.study_analysis import analyze

    study = fake_study(tmp_path, {"base": FINALS["low"], "twin": FINALS["low-twin"]})
    study.claims = [claim("same", "twin", "base", margin=1.0)]
    numbers = analyze(study)
    (twin,) = [v for v in numbers.variants if v.name == "twin"]
    assert twin.vs_baseline is not None and twin.vs_baseline.verdict == stats.WITHIN_NOISE
    assert twin.vs_baseline.p_holm is not None
    (verdict,) = numbers.claims
    assert verdict.verdict == SUPPORTED
