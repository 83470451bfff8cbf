"""The study report: numbers, plain-language summary, files, CLI and how a browser shows it."""

import base64
import json
import math
import re
from pathlib import Path

import markupsafe
import numpy as np
import pytest

from cnnlab import stats
from cnnlab.analysis.numbers import to_json
from cnnlab.analysis.render import render_html, write_report
from cnnlab.analysis.study_analysis import analyze
from cnnlab.records import EpochRow, RunSummary
from cnnlab.stats.formatting import fmt_p
from cnnlab.study.store.results import RunResult, StudyResults

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")

# --- synthetic studies ------------------------------------------------------------------------


def fake_history(final: float, epochs: int, seed: int) -> list[EpochRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(1, epochs + 1):
        f = 1 - math.exp(-1.3 * e)
        acc = final if e == epochs else final * (0.7 + 0.3 * f)
        rows.append(
            {
                "epoch": e,
                "lr": 1e-3,
                "train_loss": 1.2 * (1 - f) + 0.05,
                "train_acc": min(1.0, acc + 0.01),
                "val_loss": None,
                "val_acc": None,
                "test_loss": 1.3 * (1 - f) + 0.1 + 0.01 * rng.random(),
                "test_acc": acc,
                "images_per_s": 4000.0,
                "epoch_seconds": 2.0,
                "wall_seconds": 2.5 * e,
            }
        )
    return [EpochRow.from_dict(r) for r in rows]


def fake_run(
    root: Path,
    variant: str,
    seed: int,
    final: float = 0.9,
    status: str = "done",
    epochs: int = 4,
    error: str | None = None,
) -> RunResult:
    history = fake_history(final, epochs, seed) if status == "done" else []
    summary = None
    if status == "done":
        best = max(history, key=lambda r: r.test_acc)
        last = history[-1].to_dict()
        summary = {
            "model": "lenet5",
            "dataset": "mnist",
            "seed": seed,
            "epochs": epochs,
            "stopped_early": False,
            "final": {
                k: last[k]
                for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
            },
            "best_test_acc_optimistic": best.test_acc,
            "best_test_epoch": best.epoch,
            "params": 61_706,
            "macs_per_image": 416_520,
            "input_shape": [1, 32, 32],
            "classes": [str(i) for i in range(10)],
            "precision": "fp32",
            "train_seconds": 2.0 * epochs,
            "wall_seconds": last["wall_seconds"],
            "images_per_s": 4000.0,
        }
        summary = RunSummary.from_dict(summary)
    return RunResult(
        run_id=f"{root.name}-{variant}-{seed}",
        variant=variant,
        seed=seed,
        status=status,
        config={"model": "lenet5", "dataset": "mnist", "epochs": epochs, "seed": seed},
        run_dir=root / variant / f"seed-{seed}",
        history=history,
        summary=summary,
        error=error,
        device="cpu",
    )


def fake_study(
    root: Path,
    finals: dict[str, list[float]],
    baseline: str | None = "base",
    extra: tuple[RunResult, ...] = (),
    name: str = "synthetic",
) -> StudyResults:
    runs = [fake_run(root, v, s, a) for v, accs in finals.items() for s, a in enumerate(accs)]
    return StudyResults(
        name=name,
        dataset="mnist",
        baseline=baseline,
        variants=list(finals),
        runs=runs + list(extra),
        study_dir=root,
        description="synthetic numbers",
    )


BASE = [0.900, 0.905, 0.910, 0.895, 0.900]


def mixed_study(root: Path) -> StudyResults:
    return fake_study(
        root,
        {
            "base": BASE,
            "better": [0.930, 0.935, 0.940, 0.925, 0.931],
            "worse": [0.850, 0.855, 0.860, 0.845, 0.852],
            "same": [0.901, 0.904, 0.911, 0.896, 0.899],
            "single": [0.990],
        },
        extra=(
            fake_run(
                root,
                "same",
                9,
                status="failed",
                error="TrainingDiverged: training diverged at epoch 3 step 20: loss is nan",
            ),
            fake_run(root, "better", 9, status="pending"),
        ),
    )


def variant(analysis: dict, name: str) -> dict:
    return next(v for v in analysis["variants"] if v["name"] == name)


# --- numbers ----------------------------------------------------------------------------------


def test_analyze_gives_the_numbers_per_variant(tmp_path):
    numbers = analyze(mixed_study(tmp_path))
    a = numbers.to_json()
    assert [v["name"] for v in a["variants"]] == ["base", "better", "worse", "same", "single"]
    base = variant(a, "base")
    d = stats.describe(BASE)
    assert base["final_test_acc"]["mean"] == pytest.approx(d.mean)
    assert base["final_test_acc"]["std"] == pytest.approx(d.std)
    assert base["final_test_acc"]["ci_low"] == pytest.approx(d.ci_low)
    assert base["final_test_acc"]["values"] == BASE
    assert base["params"] == 61_706 and base["macs_per_image"] == 416_520
    assert base["epochs"] == {"configured": 4, "run_mean": 4.0}
    assert base["vs_baseline"]["verdict"] == stats.BASELINE
    assert base["train_test_gap"]["mean"] == pytest.approx(0.01)
    assert base["seconds_per_run"]["mean"] == pytest.approx(10.0)
    assert base["time_to_baseline"]["epoch"] == 4

    better = variant(a, "better")
    assert better["runs"] == {"total": 6, "done": 5, "failed": 0, "unfinished": 1}
    assert better["vs_baseline"]["verdict"] == stats.BETTER
    assert better["vs_baseline"]["diff"] == pytest.approx(
        np.mean(better["final_test_acc"]["values"]) - d.mean
    )
    assert better["time_to_baseline"]["epoch"] < 4  # reaches the baseline's final accuracy early
    assert variant(a, "worse")["vs_baseline"]["verdict"] == stats.WORSE
    assert variant(a, "worse")["time_to_baseline"]["epoch"] is None
    assert variant(a, "same")["vs_baseline"]["verdict"] == stats.WITHIN_NOISE
    assert variant(a, "single")["vs_baseline"]["verdict"] == stats.NOT_ENOUGH_RUNS
    assert variant(a, "single")["final_test_acc"]["ci_low"] is None
    assert a["best_variant"] == "single"
    # Holm over the three tests made (single is not tested).
    raw = [variant(a, n)["vs_baseline"]["p"] for n in ("better", "worse", "same")]
    adj = [variant(a, n)["vs_baseline"]["p_holm"] for n in ("better", "worse", "same")]
    assert adj == pytest.approx(stats.holm(raw))

    assert [(r["variant"], r["seed"]) for r in a["failed_runs"]] == [("same", 9)]
    assert "diverged" in a["failed_runs"][0]["error"]
    assert any("failed" in w for w in a["warnings"])
    assert any("not finished" in w for w in a["warnings"])
    json.loads(to_json(numbers))  # strict JSON: no NaN anywhere


def test_best_epoch_accuracy_is_marked_optimistic(tmp_path):
    study = fake_study(tmp_path, {"base": [0.9, 0.91]})
    for run in study.runs:  # the peak was at epoch 2, above the final value
        run.summary.best_test_acc_optimistic = 0.95
    numbers = analyze(study)
    a = numbers.to_json()
    assert variant(a, "base")["best_test_acc_optimistic"]["mean"] == 0.95
    html = render_html(numbers)
    assert "optimistic" in html and "95.00% (optimistic)" in html


SIGNIFICANT = re.compile(r"'([^']+)' is (better|worse) than the baseline")


def assert_summary_honest(a: dict) -> None:
    """Better/worse sentences exist exactly for the variants whose adjusted p < alpha."""
    called = {m.group(1): m.group(2) for s in a["summary"] for m in SIGNIFICANT.finditer(s)}
    for v in a["variants"]:
        c = v["vs_baseline"]
        if c is None or v["is_baseline"]:
            assert v["name"] not in called
            continue
        if v["name"] in called:
            assert c["p_holm"] is not None and c["p_holm"] < a["alpha"]
            assert called[v["name"]] == c["verdict"]
        else:
            assert c["verdict"] not in (stats.BETTER, stats.WORSE)
    text = " ".join(a["summary"]).lower()
    assert "significant" not in text  # the summary says better/worse/within noise, nothing vaguer


def test_summary_never_calls_a_difference_real_unless_holm_says_so(tmp_path):
    study = fake_study(
        tmp_path,
        {
            "base": BASE,
            "nominal": [0.910, 0.915, 0.920, 0.905, 0.908],  # raw p ~ 0.04, Holm p > 0.05
            "b": [0.901, 0.904, 0.911, 0.896, 0.899],
            "c": [0.899, 0.906, 0.909, 0.894, 0.901],
        },
    )
    numbers = analyze(study)
    a = numbers.to_json()
    c = variant(a, "nominal")["vs_baseline"]
    assert c["p"] < 0.05 <= c["p_holm"]
    assert c["verdict"] == stats.WITHIN_NOISE
    assert not any("'nominal' is" in s for s in a["summary"])
    noise = [s for s in a["summary"] if s.startswith("Within noise")]
    assert len(noise) == 1 and "'nominal'" in noise[0]
    assert_summary_honest(a)


def test_summary_is_honest_on_many_random_studies(tmp_path):
    rng = np.random.default_rng(7)
    seen = set()
    for i in range(80):
        k = int(rng.integers(2, 6))
        finals = {}
        for j in range(k):
            shift = rng.choice([-0.02, 0, 0.003, 0.02]) if j else 0.0
            n = int(rng.integers(1, 6))
            finals[f"v{j}"] = list(np.clip(rng.normal(0.9 + shift, 0.006, size=n), 0, 1))
        a = analyze(fake_study(tmp_path / str(i), finals, baseline="v0")).to_json()
        assert_summary_honest(a)
        seen |= {v["vs_baseline"]["verdict"] for v in a["variants"]}
    assert seen == set(stats.VERDICTS)  # every kind of verdict was exercised


def test_one_seed_per_variant_warns_and_tests_nothing(tmp_path):
    numbers = analyze(fake_study(tmp_path, {"base": [0.90], "v": [0.99]}))
    a = numbers.to_json()
    assert variant(a, "v")["vs_baseline"]["verdict"] == stats.NOT_ENOUGH_RUNS
    assert any("Only one run per variant" in w for w in a["warnings"])
    assert any("cannot be tested" in s for s in a["summary"])
    assert_summary_honest(a)


def test_no_finished_run_is_not_called_one_run_per_variant(tmp_path):
    a = analyze(fake_study(tmp_path, {"base": [], "v": []})).to_json()
    assert not any("Only one run" in w for w in a["warnings"])
    assert any("No finished runs for: base, v" in w for w in a["warnings"])


def test_no_baseline_and_missing_baseline(tmp_path):
    numbers = analyze(fake_study(tmp_path, {"a": [0.9, 0.91], "b": [0.8, 0.81]}, baseline=None))
    a = numbers.to_json()
    assert a["baseline"] is None
    assert all(v["vs_baseline"] is None for v in a["variants"])
    assert any("No baseline" in w for w in a["warnings"])
    numbers = analyze(fake_study(tmp_path, {"a": [0.9, 0.91]}, baseline="gone"))
    a = numbers.to_json()
    assert any("'gone' has no runs" in w for w in a["warnings"])


def test_p_values_are_never_rounded_across_alpha():
    assert fmt_p(0.04996) != "0.05" and float(fmt_p(0.04996)) < 0.05
    assert float(fmt_p(0.0500001)) >= 0.05
    assert fmt_p(0.000012) == "<0.0001" and fmt_p(None) == "—"


# --- files ------------------------------------------------------------------------------------


def data_uri_pngs(html: str) -> list[bytes]:
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', html)
    out = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        out.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return out


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    # Only the full-size PNGs the report writes beside itself are linked.
    outside = re.findall(r"(?:src|href)=\"(?!data:|#|report-[a-z-]+\.png\")([^\"]*)", html)
    assert not outside, f"references outside the report: {outside}"
    assert "http://" not in html and "https://" not in html and "@import" not in html


def test_write_report_of_a_synthetic_study(tmp_path):
    study = mixed_study(tmp_path / "study")
    out = tmp_path / "out"
    paths = write_report(study, out)
    assert [p.name for p in paths] == ["report.html", "report.md", "report.json"]
    html, md = paths[0].read_text(), paths[1].read_text()
    numbers = json.loads(paths[2].read_text())

    assert numbers["predictions"] == {
        "available": False,
        "reason": "no checkpoint.pt found in the finished runs of 'single'",
    }
    assert numbers["figures"] == ["report-curves.png", "report-accuracy.png"]
    expected = analyze(study).to_json()
    assert numbers["variants"] == expected["variants"]
    assert numbers["summary"] == expected["summary"]

    pngs = data_uri_pngs(html)
    assert len(pngs) == 2
    for png, name in zip(pngs, numbers["figures"], strict=True):
        assert png.startswith(PNG_MAGIC) and png == (out / name).read_bytes()
    assert_self_contained(html)
    for s in expected["summary"]:
        assert str(markupsafe.escape(s)) in html
    assert "TrainingDiverged" in html and "TrainingDiverged" in md
    assert '<meta name="viewport"' in html and "overflow-x: auto" in html

    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file()
    assert "| variant |" in md and "within noise" in md and "(optimistic)" in md
    assert "no checkpoint.pt" in md


def test_names_are_escaped_in_html(tmp_path):
    study = fake_study(tmp_path, {"base": [0.9, 0.91], "<b>x</b> & y": [0.9, 0.92]})
    html = render_html(analyze(study))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt; &amp; y" in html


def test_report_of_an_empty_study(tmp_path):
    study = StudyResults("empty", "mnist", "base", ["base"], [], tmp_path)
    paths = write_report(study, tmp_path / "out")
    assert "No finished runs" in paths[0].read_text()
    assert json.loads(paths[2].read_text())["best_variant"] is None


def test_claims_and_comparisons_are_one_family_with_intervals_that_agree(tmp_path):
    """A claim on a variant and the baseline is that comparison: one p, one verdict; every
    interval excludes zero exactly when its verdict is a difference."""
    from cnnlab.claims.claim import Claim

    results = mixed_study(tmp_path)
    results.claims = [Claim(says="better beats base", form="better", variants=("better", "base"))]
    a = analyze(results).to_json()
    (claim,) = a["claims"]
    compared = variant(a, "better")["vs_baseline"]
    assert claim["p_holm"] == compared["p_holm"] and claim["verdict"] == "supported"
    assert "One family" in " ".join(analyze(results).family_note.split())
    for v in a["variants"]:
        c = v["vs_baseline"]
        if c["verdict"] in (stats.BETTER, stats.WORSE, stats.WITHIN_NOISE):
            differs = c["verdict"] != stats.WITHIN_NOISE
            assert (c["p_holm"] < 0.05) == differs
            assert (c["diff_ci_low"] > 0 or c["diff_ci_high"] < 0) == differs
            assert c["confidence"] >= 0.95  # held to alpha / (tests left at its step)


def test_one_epoch_curves_are_bars_not_dots(tmp_path, monkeypatch):
    """A curve of one epoch is a dot: the curves figure shows a bar per variant instead."""
    import matplotlib.axes

    from cnnlab import plots

    bars = []
    real = matplotlib.axes.Axes.bar
    monkeypatch.setattr(
        matplotlib.axes.Axes, "bar", lambda ax, *a, **k: bars.append(a) or real(ax, *a, **k)
    )
    one = {k: ([1], [0.5], [0.01]) for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
    out = plots.plot_study_curves({"a": one, "b": one}, tmp_path / "curves.png", "a")
    assert out.is_file() and len(bars) == 4  # one bar chart per panel
    bars.clear()
    two = {k: ([1, 2], [0.5, 0.6], [0.01, 0.02]) for k in one}
    plots.plot_study_curves({"a": two}, tmp_path / "curves2.png", "a")
    assert bars == []
