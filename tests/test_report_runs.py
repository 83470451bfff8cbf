"""The report of real runs (checkpoints, predictions, a real Chromium) and the `cnnlab report` and `compare` commands."""

import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from test_report import (
    BASE,
    CHROMIUM,
    assert_self_contained,
    data_uri_pngs,
    fake_study,
    mixed_study,
    variant,
)

from cnnlab import cli, stats
from cnnlab.analysis.compare import compare_studies
from cnnlab.analysis.numbers import to_json
from cnnlab.analysis.render import render_html, write_report
from cnnlab.analysis.study_analysis import analyze
from cnnlab.errors import CnnlabError
from cnnlab.study.store.results import RunResult, StudyResults

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
    from cnnlab.data.datasets import load_dataset

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
    from cnnlab.study.store.predictions import predict_run

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
@pytest.mark.slow
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
    """`cnnlab.study.store.folders.load_any` serving studies from a dict (keyed by folder)."""
    import cnnlab.cli.report_command

    monkeypatch.setattr(cnnlab.cli.report_command, "console", Console(width=200, color_system=None))
    studies: dict[Path, StudyResults] = {}

    def load_any(paths):
        (study_dir,) = paths
        if Path(study_dir) not in studies:
            raise CnnlabError(f"{study_dir}: not a study folder")
        return studies[Path(study_dir)]

    module = types.ModuleType("cnnlab.study.store.folders")
    module.load_any = load_any
    monkeypatch.setitem(sys.modules, "cnnlab.study.store.folders", module)
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
