"""The study report: numbers, plain-language summary, files, CLI and how a browser shows it."""

import base64
import dataclasses
import io
import json
import math
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import markupsafe
import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from cnnlab import cli
from cnnlab.analysis import stats
from cnnlab.analysis.compare import compare_studies
from cnnlab.analysis.formatting import fmt_p
from cnnlab.analysis.numbers import analyze, to_json
from cnnlab.analysis.render import render_html, write_report
from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow, RunSummary
from cnnlab.study.results import RunResult, StudyResults

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


# --- real runs: checkpoints, predictions and the browser ---------------------------------------


def train_run(data_dir: Path, data, root: Path, name: str, lr: float, seed: int) -> RunResult:
    from cnnlab.config.schema import config_dict, make_config
    from cnnlab.training.loop import train

    cfg = make_config(
        {
            "dataset": "mnist",
            "model": "mlp",
            "epochs": 1,
            "batch_size": 50,
            "eval_batch_size": 200,
            "precision": "fp32",
            "device": "cpu",
            "data_dir": str(data_dir),
            "seed": seed,
            "optimizer": {"name": "adam", "lr": lr},
        }
    )
    run_dir = root / name / f"seed-{seed}"
    record = train(cfg, run_dir, data=data)
    return RunResult(
        run_id=f"{name}-{seed}",
        variant=name,
        seed=seed,
        status="done",
        config=config_dict(cfg),
        run_dir=run_dir,
        history=record.history,
        summary=record.summary,
        device="cpu",
    )


@pytest.fixture(scope="module")
def real_study(data_dir, tmp_path_factory) -> StudyResults:
    """2 learning rates x 2 seeds of a small MLP, 1 epoch on the learnable MNIST (~3 s)."""
    from cnnlab.data.registry import load_dataset

    root = tmp_path_factory.mktemp("real-study")
    data = load_dataset("mnist", data_dir)
    # One thread: on a small shared machine two OpenMP threads competing with other
    # work turn a 0.15 s run into 10 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [
            train_run(data_dir, data, root, name, lr, seed)
            for name, lr in (("slow", 1e-4), ("fast", 3e-4))
            for seed in (0, 1)
        ]
    finally:
        torch.set_num_threads(threads)
    return StudyResults("lr", "mnist", "slow", ["slow", "fast"], runs, root, "learning rate")


@pytest.fixture(scope="module")
def real_report(real_study, tmp_path_factory) -> list[Path]:
    return write_report(real_study, tmp_path_factory.mktemp("real-report"))


def test_report_of_real_runs_predicts_with_the_best_checkpoint(real_study, real_report):
    numbers = json.loads(real_report[2].read_text())
    pred = numbers["predictions"]
    assert pred["available"], pred
    best = numbers["best_variant"]
    runs = [r for r in real_study.runs if r.variant == best]
    run = min(runs, key=lambda r: (r.final_test_acc, r.seed))  # 2 seeds: the lower middle
    assert pred["variant"] == best and pred["seed"] == run.seed
    # The same model on the same test images: the accuracy the trainer measured.
    assert pred["accuracy"] == pytest.approx(run.final_test_acc, abs=1e-6)
    matrix = np.array(pred["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 200
    assert np.trace(matrix) / 200 == pytest.approx(pred["accuracy"])
    expected_figures = [
        "report-curves.png",
        "report-accuracy.png",
        "report-confusion.png",
        "report-predictions.png",
    ]
    assert numbers["figures"][:4] == expected_figures
    if pred["accuracy"] < 1:
        assert numbers["figures"][4:] == ["report-confident-wrong.png"]
    html = real_report[0].read_text()
    assert len(data_uri_pngs(html)) == len(numbers["figures"])
    assert_self_contained(html)
    for name in numbers["figures"]:
        with Image.open(real_report[0].parent / name) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_runs_save_their_test_predictions_and_the_report_reads_them(real_study, tmp_path):
    from cnnlab.evaluation.saved import FILE
    from cnnlab.study.predictions import predict_run

    run = real_study.runs[0]
    assert (run.run_dir / FILE).is_file()
    saved = predict_run(run)
    without = dataclasses.replace(run, run_dir=tmp_path / "without")
    shutil.copytree(run.run_dir, without.run_dir)
    (without.run_dir / FILE).unlink()
    again = predict_run(without)  # predicted with the checkpoint
    assert np.array_equal(saved.pred, again.pred) and np.array_equal(saved.true, again.true)
    np.testing.assert_allclose(saved.prob, again.prob, atol=1e-5)
    assert saved.accuracy == pytest.approx(run.final_test_acc, abs=1e-6)

    # The saved file alone is enough: a broken checkpoint is never opened.
    broken = dataclasses.replace(run, run_dir=tmp_path / "broken")
    shutil.copytree(run.run_dir, broken.run_dir)
    (broken.run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert np.array_equal(predict_run(broken).pred, saved.pred)
    # An unreadable file is not trusted either: the run is predicted again.
    for blob in (b"", b"not a zip file", (run.run_dir / FILE).read_bytes()[:100]):
        (without.run_dir / FILE).write_bytes(blob)
        assert np.array_equal(predict_run(without).pred, saved.pred)
    # Predictions of another epoch than the run's last are not used.
    stale = dataclasses.replace(broken, summary=dataclasses.replace(run.summary, epochs=2))
    with pytest.raises(CnnlabError):
        predict_run(stale)


CONSOLE = re.compile(r":CONSOLE[:(]")  # Chromium logs every console message as INFO:CONSOLE:<line>


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)
def test_report_opens_cleanly_in_headless_chromium(real_report, tmp_path):
    """Load report.html from disk: no console messages, every image a decodable PNG, a screenshot.

    The page has no scripts and references nothing outside itself, so the
    only way to fail is a broken page; a deliberately broken page shows the
    console check does catch errors with this Chromium.
    """
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>undefinedFunction()</script>")
    caught = chromium(tmp_path, bad.as_uri(), "--dump-dom")
    assert CONSOLE.search(caught.stderr) and "undefinedFunction" in caught.stderr

    page = chromium(tmp_path, real_report[0].as_uri(), "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    assert not CONSOLE.search(page.stderr), [
        line for line in page.stderr.splitlines() if CONSOLE.search(line)
    ]
    dom = page.stdout
    assert "Study report: lr" in dom
    pngs = data_uri_pngs(dom)
    assert len(pngs) >= 4
    for png in pngs:
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
            assert im.format == "PNG"

    shot = tmp_path / "report-shot.png"
    taken = chromium(
        tmp_path, real_report[0].as_uri(), f"--screenshot={shot}", "--window-size=1200,3000"
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, 3000)
        # Not a blank page: the screenshot has dark text and coloured figures.
        pixels = np.asarray(im.convert("L"))
        assert pixels.min() < 80 and (pixels < 250).mean() > 0.02


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def fake_store(monkeypatch):
    """`cnnlab.study.folders.load_any` serving studies from a dict (keyed by folder)."""
    import cnnlab.cli.report

    monkeypatch.setattr(cnnlab.cli.report, "console", Console(width=200, color_system=None))
    studies: dict[Path, StudyResults] = {}

    def load_any(paths):
        (study_dir,) = paths
        if Path(study_dir) not in studies:
            raise CnnlabError(f"{study_dir}: not a study folder")
        return studies[Path(study_dir)]

    module = types.ModuleType("cnnlab.study.folders")
    module.load_any = load_any
    monkeypatch.setitem(sys.modules, "cnnlab.study.folders", module)
    return studies


def test_cli_report_json_prints_the_numbers_and_writes_nothing(fake_store, tmp_path, capsys):
    fake_store[tmp_path] = mixed_study(tmp_path)
    assert cli.main(["report", str(tmp_path), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers == json.loads(to_json(analyze(fake_store[tmp_path])))
    assert not (tmp_path / "report.html").exists()


def test_cli_report_writes_the_files_and_prints_a_table(fake_store, tmp_path, capsys, monkeypatch):
    import cnnlab.analysis.render as render

    fake_store[tmp_path] = mixed_study(tmp_path)
    monkeypatch.setattr(render, "make_figures", lambda *args: [])  # figures: tested above
    out = tmp_path / "out"
    assert cli.main(["report", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "better" in printed and "within noise" in printed and "report.html" in printed
    assert all((out / name).is_file() for name in ("report.html", "report.md", "report.json"))

    assert cli.main(["report", str(tmp_path), "--out", str(out), "--format", "md"]) == 0
    assert capsys.readouterr().out == (out / "report.md").read_text()


def test_cli_report_of_a_missing_study_is_one_error_line(fake_store, tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "not a study folder" in capsys.readouterr().err


def test_compare_two_studies(fake_store, tmp_path, capsys):
    a = fake_study(tmp_path / "a", {"base": BASE, "bn": [0.93, 0.935, 0.94, 0.925]}, name="cpu")
    b = fake_study(
        tmp_path / "b",
        {"base": [0.901, 0.904, 0.911, 0.896], "bn": [0.96, 0.965, 0.97, 0.955], "new": [0.5]},
        name="gpu",
    )
    result = compare_studies(a, b)
    rows = {r["variant"]: r for r in result["variants"]}
    assert list(rows) == ["base", "bn", "new"]
    assert rows["base"]["b_minus_a"]["verdict"] == stats.WITHIN_NOISE
    assert rows["bn"]["b_minus_a"]["verdict"] == "higher in B"
    w = stats.welch([0.96, 0.965, 0.97, 0.955], [0.93, 0.935, 0.94, 0.925])
    assert rows["bn"]["b_minus_a"]["p"] == pytest.approx(w.p)
    assert rows["bn"]["b_minus_a"]["p_holm"] == pytest.approx(
        stats.holm([rows["base"]["b_minus_a"]["p"], w.p])[1]
    )
    assert rows["new"]["a"] is None and rows["new"]["b_minus_a"] is None

    fake_store[tmp_path / "a"], fake_store[tmp_path / "b"] = a, b
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    table = capsys.readouterr().out
    assert "higher in B" in table and "within noise" in table


def test_composite_dataset_gets_an_accuracy_per_domain_table(tmp_path):
    results = fake_study(tmp_path, {"base": [0.90, 0.91, 0.92], "new": [0.93, 0.94, 0.95]})
    for run in results.runs:
        shift = 0.0 if run.variant == "base" else 0.05
        run.summary.final.test_acc_by_domain = {
            "mnist": 0.99,
            "printed": 0.80 + shift + 0.01 * run.seed,
        }
    numbers = analyze(results)
    a = numbers.to_json()
    assert a["domains"] == ["mnist", "printed"]
    printed = variant(a, "new")["final_test_acc_by_domain"]["printed"]
    assert printed["mean"] == pytest.approx(0.86)
    assert printed["values"] == pytest.approx([0.85, 0.86, 0.87])
    html = render_html(numbers)
    assert 'id="domains"' in html and "86.00% ± 1.00" in html
    md = (write_report(results, tmp_path / "report", predictions=False), None)[0]
    text = next(p for p in md if p.suffix == ".md").read_text()
    assert "## Accuracy per domain" in text and "| new | 99.00% ± 0.00 | 86.00% ± 1.00 |" in text


def test_plain_dataset_has_no_domain_section(tmp_path):
    numbers = analyze(fake_study(tmp_path, {"base": BASE}))
    a = numbers.to_json()
    assert a["domains"] == []
    assert 'id="domains"' not in render_html(numbers)
