"""The study report: numbers (JSON), a Markdown page and a self-contained HTML page.

``analyze(results)`` computes every number from a ``StudyResults``;
``write_report(results, out_dir)`` adds the figures (PNG files beside the
Markdown, base64 data URIs inside the HTML) and predictions of the best
variant's checkpoint, and writes ``report.html``, ``report.md`` and
``report.json`` atomically.

The metric compared is each run's FINAL test accuracy (the last epoch), the
only figure that does not peek at the test set. The best-epoch test accuracy
is shown too, but marked optimistic: choosing the epoch by test accuracy
selects on the test set. Whether a variant differs from the baseline is
decided in ``cnnlab.analysis.stats`` (Welch's t-test, Holm-adjusted, alpha
0.05); the summary sentences only repeat those verdicts.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import __version__
from cnnlab.analysis import stats
from cnnlab.atomic import atomic_write_text
from cnnlab.data.arrays import DatasetArrays
from cnnlab.study.results import RunResult, StudyResults
from cnnlab.train.saved_predictions import FILE as PREDICTIONS_FILE
from cnnlab.train.saved_predictions import SavedPredictions, confusion_matrix

SCHEMA = "cnnlab-report/1"
CURVE_KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")
GRID_IMAGES = 24
WRONG_IMAGES = 12

FIG_CURVES = "report-curves.png"
FIG_ACCURACY = "report-accuracy.png"
FIG_CONFUSION = "report-confusion.png"
FIG_PREDICTIONS = "report-predictions.png"
FIG_WRONG = "report-confident-wrong.png"


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------


def variant_names(results: StudyResults) -> list[str]:
    names = list(results.variants)
    for run in results.runs:
        if run.variant not in names:
            names.append(run.variant)
    return names


def done_runs(results: StudyResults, variant: str) -> list[RunResult]:
    return [r for r in results.runs_of(variant, "done") if r.summary is not None]


def _col(history: Sequence[dict[str, Any]], key: str) -> list[float | None]:
    out: list[float | None] = []
    for row in history:
        v = row.get(key)
        out.append(None if v is None or v == "" else float(v))
    return out


def json_safe(value: Any) -> Any:
    """JSON-safe: nan/inf -> None, tuples -> lists, paths -> strings, numpy -> python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _first(runs: Sequence[RunResult], key: str) -> Any:
    for r in runs:
        if r.summary is not None and r.summary.get(key) is not None:
            return r.summary[key]
    return None


def _analyze_variant(
    results: StudyResults,
    name: str,
    comparison: stats.Comparison | None,
    target: float | None,
    confidence: float,
) -> dict[str, Any]:
    all_runs = [r for r in results.runs if r.variant == name]
    done = done_runs(results, name)
    summaries = [r.summary for r in done if r.summary is not None]
    finals = [s["final"]["test_acc"] for s in summaries]
    gaps = [
        s["final"]["train_acc"] - s["final"]["test_acc"]
        for s in summaries
        if s["final"].get("train_acc") is not None and s["final"].get("test_acc") is not None
    ]
    histories = [r.history for r in done if r.history]
    curves: dict[str, Any] = {}
    for key in CURVE_KEYS:
        cols = [_col(h, key) for h in histories]
        if any(v is not None for c in cols for v in c):
            epochs, mean, std, counts = stats.mean_curve(cols)
            curves[key] = {"mean": mean, "std": std, "runs": counts}
            curves["epoch"] = epochs
    ttt = None
    if target is not None and histories:
        ttt = stats.time_to_target(
            [_col(h, "test_acc") for h in histories],
            [_col(h, "wall_seconds") for h in histories],
            target,
        ).to_dict()
    configured = next((r.config.get("epochs") for r in all_runs if r.config), None)
    by_domain: dict[str, list[float]] = {}
    for summary in summaries:
        for domain, acc in (summary["final"].get("test_acc_by_domain") or {}).items():
            by_domain.setdefault(domain, []).append(acc)
    return {
        "name": name,
        "is_baseline": name == results.baseline,
        "model": next((r.config.get("model") for r in all_runs if r.config), None),
        "params": _first(done, "params"),
        "macs_per_image": _first(done, "macs_per_image"),
        "epochs": {
            "configured": configured,
            "run_mean": float(np.mean([s["epochs"] for s in summaries])) if summaries else None,
        },
        "runs": {
            "total": len(all_runs),
            "done": len(done),
            "failed": sum(r.status == "failed" for r in all_runs),
            "unfinished": sum(r.status in ("pending", "running") for r in all_runs),
        },
        "seeds_done": [r.seed for r in done],
        "final_test_acc": {
            **stats.describe(finals, confidence, bounds=(0.0, 1.0)).to_dict(),
            "values": finals,
        },
        "vs_baseline": None if comparison is None else comparison.to_dict(),
        "final_test_acc_by_domain": {
            domain: {**stats.describe(values, confidence, (0.0, 1.0)).to_dict(), "values": values}
            for domain, values in by_domain.items()
        },
        "best_test_acc_optimistic": stats.describe(
            [s.get("best_test_acc_optimistic") for s in summaries], confidence, (0.0, 1.0)
        ).to_dict(),
        "final_test_loss": stats.describe(
            [s["final"].get("test_loss") for s in summaries], confidence
        ).to_dict(),
        "train_test_gap": stats.describe(gaps, confidence).to_dict(),
        "seconds_per_run": stats.describe(
            [s.get("wall_seconds") for s in summaries], confidence
        ).to_dict(),
        "images_per_s": stats.describe([s.get("images_per_s") for s in summaries], confidence).mean,
        "time_to_baseline": ttt,
        "curves": curves,
    }


def analyze(
    results: StudyResults, alpha: float = stats.ALPHA, confidence: float = stats.CONFIDENCE
) -> dict[str, Any]:
    """Every number of the report, JSON-ready (``report.json`` is this plus ``predictions``).

    Keys: schema, cnnlab_version, study, metric, alpha, confidence,
    baseline, best_variant, variants (one dict per variant, in study order),
    runs (every run), failed_runs, summary (sentences), warnings.
    """
    names = variant_names(results)
    finals = {v: [r.final_test_acc for r in done_runs(results, v)] for v in names}
    baseline = results.baseline if results.baseline in names else None
    comparisons = (
        stats.compare_to_baseline(finals, baseline, alpha, confidence, (-1.0, 1.0))
        if baseline
        else {}
    )
    target = stats.describe(finals[baseline]).mean if baseline else None
    variants = [_analyze_variant(results, v, comparisons.get(v), target, confidence) for v in names]
    with_runs = [v for v in variants if v["final_test_acc"]["mean"] is not None]
    best = max(with_runs, key=lambda v: v["final_test_acc"]["mean"])["name"] if with_runs else None
    runs = [
        {
            "variant": r.variant,
            "seed": r.seed,
            "status": r.status,
            "run_id": r.run_id,
            "final_test_acc": r.final_test_acc,
            "best_test_acc_optimistic": None
            if r.summary is None
            else r.summary.get("best_test_acc_optimistic"),
            "best_test_epoch": None if r.summary is None else r.summary.get("best_test_epoch"),
            "epochs": None if r.summary is None else r.summary.get("epochs"),
            "wall_seconds": None if r.summary is None else r.summary.get("wall_seconds"),
            "device": r.device,
            "run_dir": str(r.run_dir),
            "error": r.error,
        }
        for r in results.runs
    ]
    failed = [r for r in runs if r["status"] == "failed"]
    domains = list(
        dict.fromkeys(d for v in variants for d in v["final_test_acc_by_domain"])
    )  # first-seen order: the dataset's own domain order
    analysis: dict[str, Any] = {
        "schema": SCHEMA,
        "cnnlab_version": __version__,
        "study": {
            "name": results.name,
            "dataset": results.dataset,
            "description": results.description,
            "study_dir": str(results.study_dir),
        },
        "metric": "final test accuracy (last epoch)",
        "alpha": alpha,
        "confidence": confidence,
        "baseline": baseline,
        "best_variant": best,
        "variants": variants,
        "domains": domains,
        "runs": runs,
        "failed_runs": failed,
    }
    analysis["summary"], analysis["warnings"] = summarize(analysis, results.baseline)
    return json_safe(analysis)


# ---------------------------------------------------------------------------
# Plain-language summary
# ---------------------------------------------------------------------------


def fmt_pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def fmt_pts(x: float | None, digits: int = 2) -> str:
    """A difference of accuracies in percentage points, signed."""
    return "—" if x is None else f"{100 * x:+.{digits}f}"


def fmt_p(p: float | None, alpha: float = stats.ALPHA) -> str:
    """Three significant digits, more when rounding would cross ``alpha`` (0.04996 -> 0.04996)."""
    if p is None:
        return "—"
    if p < 1e-4:
        return "<0.0001"
    text = f"{p:.3g}"
    if (float(text) < alpha) != (p < alpha):
        text = f"{p:.8g}"
    return text


def p_phrase(p: float | None) -> str:
    """ "p = 0.0123" or "p < 0.0001", for sentences."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_count(n: float | None) -> str:
    if n is None:
        return "—"
    n = float(n)
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _diff_text(c: dict[str, Any]) -> str:
    text = f"{fmt_pts(c['diff'])} points"
    if c["diff_ci_low"] is not None:
        text += f" (95% CI {fmt_pts(c['diff_ci_low'])} to {fmt_pts(c['diff_ci_high'])})"
    return text


def summarize(
    analysis: dict[str, Any], declared_baseline: str | None
) -> tuple[list[str], list[str]]:
    """(summary sentences, warnings) from the numbers of ``analyze``.

    A variant is called better or worse ONLY when its verdict says so, and
    verdicts come from ``stats.verdict_for``: Holm-adjusted p < alpha.
    """
    alpha = analysis["alpha"]
    variants = analysis["variants"]
    baseline = analysis["baseline"]
    sentences: list[str] = []
    warnings: list[str] = []
    by_name = {v["name"]: v for v in variants}

    if baseline is None:
        if declared_baseline:
            warnings.append(
                f"The baseline '{declared_baseline}' has no runs in this study: nothing can be compared."
            )
        else:
            warnings.append(
                "No baseline is set: the variants are described but not tested against one."
            )
    else:
        b = by_name[baseline]["final_test_acc"]
        if b["n"] == 0:
            sentences.append(f"The baseline '{baseline}' has no finished runs yet.")
        else:
            spread = f" ± {100 * b['std']:.2f}" if b["std"] is not None else ""
            sentences.append(
                f"Baseline '{baseline}': final test accuracy {fmt_pct(b['mean'])}{spread} "
                f"(mean ± std over {b['n']} seed{'s' if b['n'] != 1 else ''})."
            )

    noise: list[str] = []
    for v in variants:
        c = v["vs_baseline"]
        if c is None or v["is_baseline"]:
            continue
        name = v["name"]
        verdict = c["verdict"]
        if verdict in (stats.BETTER, stats.WORSE):
            assert c["p_holm"] is not None and c["p_holm"] < alpha  # the only way to get here
            sentences.append(
                f"'{name}' is {verdict} than the baseline: {_diff_text(c)} of accuracy "
                f"(Holm-adjusted {p_phrase(c['p_holm'])}, below alpha {alpha:g})."
            )
        elif verdict == stats.WITHIN_NOISE:
            noise.append(f"'{name}' {_diff_text(c)}, adjusted {p_phrase(c['p_holm'])}")
        elif verdict == stats.NOT_ENOUGH_RUNS:
            n_v, n_b = c["n_variant"], c["n_baseline"]
            observed = (
                f" The observed difference, {fmt_pts(c['diff'])} points, is not evidence either way."
                if c["diff"] is not None
                else ""
            )
            sentences.append(
                f"'{name}' cannot be tested: it has {n_v} finished run{'s' if n_v != 1 else ''} "
                f"and the baseline {n_b}; a test needs at least {stats.MIN_RUNS} on each side."
                + observed
            )
    if noise:
        sentences.append(
            "Within noise (no evidence of a difference from the baseline at alpha "
            f"{alpha:g} after Holm's correction): " + "; ".join(noise) + "."
        )

    best = analysis["best_variant"]
    if best is not None and best != baseline and baseline is not None:
        c = by_name[best]["vs_baseline"]
        if c is not None and c["verdict"] != stats.BETTER:
            sentences.append(
                f"'{best}' has the highest mean accuracy, but that is not evidence that it is "
                "better than the baseline."
            )

    n_done = [v["runs"]["done"] for v in variants]
    if n_done and max(n_done) <= 1:
        warnings.append(
            "Only one run per variant: no spread, no confidence intervals and no significance "
            "test are possible. Repeat each variant over several seeds (3 to 5 at least)."
        )
    else:
        few = [v["name"] for v in variants if v["runs"]["done"] == 1]
        if few:
            warnings.append(f"Only one finished run for: {', '.join(few)}; they are not tested.")
        two = [v["name"] for v in variants if v["runs"]["done"] == 2]
        if two:
            warnings.append(
                f"Only two finished runs for: {', '.join(two)}. With one degree of freedom the "
                "95% interval is ±12.7 standard errors wide, so only huge differences can "
                "show; 3 to 5 seeds give useful intervals."
            )
    failed = analysis["failed_runs"]
    if failed:
        warnings.append(
            f"{len(failed)} run{'s' if len(failed) != 1 else ''} failed (listed below with their "
            "errors); the statistics use the finished runs only, which may bias them if failures "
            "depend on the variant."
        )
    unfinished = sum(v["runs"]["unfinished"] for v in variants)
    if unfinished:
        warnings.append(
            f"{unfinished} run{'s' if unfinished != 1 else ''} not finished yet (pending or "
            "running): this report is partial."
        )
    empty = [v["name"] for v in variants if v["runs"]["done"] == 0]
    if empty:
        warnings.append(f"No finished runs for: {', '.join(empty)}.")
    perm = [
        v["name"]
        for v in variants
        if v["vs_baseline"] is not None and v["vs_baseline"]["method"] == "permutation"
    ]
    if perm:
        warnings.append(
            f"Every seed gave exactly the same accuracy for {', '.join(perm)} and the baseline, "
            "so Welch's test is undefined; an exact permutation test was used instead."
        )
    ceiling = [
        v["name"]
        for v in variants
        if v["final_test_acc"]["mean"] is not None and v["final_test_acc"]["mean"] >= 0.999
    ]
    if ceiling:
        warnings.append(
            f"{', '.join(ceiling)} reach{'es' if len(ceiling) == 1 else ''} 99.9% or more: at this "
            "ceiling the test set cannot show which variant is better; use a harder dataset."
        )
    epochs = {v["epochs"]["configured"] for v in variants if v["epochs"]["configured"]}
    if len(epochs) > 1:
        warnings.append(
            "The variants train for different numbers of epochs "
            f"({', '.join(str(e) for e in sorted(epochs))}): differences may come from "
            "training length alone."
        )
    return sentences, warnings


# ---------------------------------------------------------------------------
# Display rows shared by the Markdown and HTML renderings
# ---------------------------------------------------------------------------

DOMAIN_NOTE = (
    "Final test accuracy on each part of the composite test set (mean ± std over seeds); "
    "the overall figure above weights the parts by their test-set sizes."
)

COLUMNS = [  # the deciding columns first: a narrow screen shows them without scrolling
    ("variant", "variant"),
    ("runs", "runs done / total"),
    ("acc", "final test acc (mean ± std)"),
    ("ci", "95% CI"),
    ("diff", "Δ vs baseline, points [95% CI]"),
    ("p_holm", "p (Holm)"),
    ("verdict", "verdict"),
    ("p", "p (Welch, unadjusted)"),
    ("best", "best-epoch test acc (optimistic)"),
    ("gap", "train − test gap, points"),
    ("reach", "reaches baseline final acc"),
    ("epochs", "epochs"),
    ("seconds", "time / run"),
    ("params", "parameters"),
    ("macs", "MACs / image"),
]


def display_rows(analysis: dict[str, Any]) -> list[dict[str, str]]:
    """One dict of display strings per variant, keyed like ``COLUMNS``."""
    rows = []
    for v in analysis["variants"]:
        acc = v["final_test_acc"]
        c = v["vs_baseline"]
        runs = v["runs"]
        epochs = v["epochs"]
        ep = "—" if epochs["configured"] is None else str(epochs["configured"])
        if (
            epochs["run_mean"] is not None
            and epochs["configured"] is not None
            and epochs["run_mean"] != epochs["configured"]
        ):
            ep += f" (ran {epochs['run_mean']:.1f})"
        run_text = f"{runs['done']}/{runs['total']}"
        if runs["failed"]:
            run_text += f", {runs['failed']} failed"
        if runs["unfinished"]:
            run_text += f", {runs['unfinished']} unfinished"
        if acc["mean"] is None:
            acc_text = "—"
        elif acc["std"] is None:
            acc_text = f"{fmt_pct(acc['mean'])} (1 run)"
        else:
            acc_text = f"{fmt_pct(acc['mean'])} ± {100 * acc['std']:.2f}"
        ci = (
            f"{fmt_pct(acc['ci_low'])} – {fmt_pct(acc['ci_high'])}"
            if acc["ci_low"] is not None
            else "—"
        )
        if v["is_baseline"]:
            diff, p, p_holm, verdict = "baseline", "—", "—", stats.BASELINE
        elif c is None:
            diff, p, p_holm, verdict = "—", "—", "—", "—"
        else:
            diff = fmt_pts(c["diff"])
            if c["diff_ci_low"] is not None:
                diff += f" [{fmt_pts(c['diff_ci_low'])}, {fmt_pts(c['diff_ci_high'])}]"
            p, p_holm, verdict = fmt_p(c["p"]), fmt_p(c["p_holm"]), c["verdict"]
            if c["method"] == "permutation":
                p += " (perm.)"
        best = v["best_test_acc_optimistic"]
        gap = v["train_test_gap"]
        ttt = v["time_to_baseline"]
        if ttt is None:
            reach = "—"
        elif ttt["epoch"] is None:
            reach = "never"
        else:
            reach = f"epoch {ttt['epoch']}"
            if ttt["seconds"] is not None:
                reach += f" ({fmt_seconds(ttt['seconds'])})"
        rows.append(
            {
                "variant": v["name"],
                "params": "—" if v["params"] is None else f"{v['params']:,}",
                "macs": fmt_count(v["macs_per_image"]),
                "epochs": ep,
                "runs": run_text,
                "acc": acc_text,
                "ci": ci,
                "diff": diff,
                "p": p,
                "p_holm": p_holm,
                "verdict": verdict,
                "best": f"{fmt_pct(best['mean'])} (optimistic)"
                if best["mean"] is not None
                else "—",
                "gap": fmt_pts(gap["mean"]),
                "seconds": fmt_seconds(v["seconds_per_run"]["mean"]),
                "reach": reach,
            }
        )
    return rows


def domain_rows(analysis: dict[str, Any]) -> list[dict[str, str]]:
    """Per variant, final test accuracy on each domain of a composite dataset (mean ± std)."""
    rows = []
    for v in analysis["variants"]:
        row = {"variant": v["name"]}
        for domain in analysis["domains"]:
            d = v["final_test_acc_by_domain"].get(domain)
            if d is None or d["mean"] is None:
                row[domain] = "—"
            elif d["std"] is None:
                row[domain] = f"{fmt_pct(d['mean'])} (1 run)"
            else:
                row[domain] = f"{fmt_pct(d['mean'])} ± {100 * d['std']:.2f}"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Figures and predictions
# ---------------------------------------------------------------------------


@dataclass
class Figure:
    file: str
    title: str
    caption: str
    png: bytes = b""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Predictions:
    """Test-set predictions of one checkpoint (the best variant's first finished seed)."""

    variant: str
    seed: int
    checkpoint: Path
    dataset: str
    classes: list[str]
    images: np.ndarray  # uint8 (N, C, H, W) as stored, for display
    true: np.ndarray
    pred: np.ndarray
    prob: np.ndarray  # softmax probability of the predicted class
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.pred == self.true)) if len(self.true) else float("nan")


def predict_run(run: RunResult, device: str = "cpu") -> Predictions:
    """Predictions of ``run``'s checkpoint on its dataset's test split: the ones the run saved
    after its last epoch when they match the test split, else predicted again (on the CPU by
    default).

    Raises CnnlabError (or OSError) when the checkpoint or the data are missing.
    """
    saved = _saved_predictions(run)
    if saved is not None:
        return saved
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.evaluate import predict_test_split
    from cnnlab.train.saved_predictions import SavedPredictions

    ckpt = load_checkpoint(Path(run.run_dir) / "checkpoint.pt")
    if not ckpt.config.get("dataset") and run.config.get("dataset"):
        ckpt.config = {**ckpt.config, "dataset": run.config["dataset"]}
    result = predict_test_split(ckpt, device=device)
    predicted = SavedPredictions.from_logits(result.logits, result.labels, ckpt.epoch)
    return _predictions(run, result.dataset, list(ckpt.classes), predicted)


def _saved_predictions(run: RunResult) -> Predictions | None:
    """The predictions ``run`` saved after its last epoch, if they are of its final model and
    of the test split as it loads now (same labels in the same order)."""
    from cnnlab.data.sources import load_dataset
    from cnnlab.train.saved_predictions import load_predictions

    saved = load_predictions(Path(run.run_dir))
    summary = run.summary or {}
    if saved is None or saved.epoch != summary.get("epochs") or not summary.get("classes"):
        return None
    data_dir = run.config.get("data_dir")
    data = load_dataset(run.config["dataset"], Path(data_dir) if data_dir else None)
    if not np.array_equal(data.test.labels, saved.labels):
        return None
    return _predictions(run, data, list(summary["classes"]), saved)


def _predictions(
    run: RunResult, data: DatasetArrays, classes: list[str], predicted: SavedPredictions
) -> Predictions:
    return Predictions(
        variant=run.variant,
        seed=run.seed,
        checkpoint=Path(run.run_dir) / "checkpoint.pt",
        dataset=data.name,
        classes=classes,
        images=data.test.images,
        true=predicted.labels,
        pred=predicted.pred,
        prob=predicted.prob,
        matrix=confusion_matrix(predicted.pred, predicted.labels, len(classes)),
    )


def _predict_best(results: StudyResults, analysis: dict[str, Any]) -> Predictions | str:
    """Predictions of the best variant's first finished seed, or why there are none."""
    from cnnlab.errors import CnnlabError

    best = analysis["best_variant"]
    if best is None:
        return "no finished runs"
    runs = [
        r
        for r in done_runs(results, best)
        if any((Path(r.run_dir) / name).is_file() for name in (PREDICTIONS_FILE, "checkpoint.pt"))
    ]
    if not runs:
        return f"no checkpoint.pt found in the finished runs of '{best}'"
    run = runs[0]
    try:
        return predict_run(run)
    except (CnnlabError, OSError, RuntimeError, KeyError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"could not predict with {run.run_dir}/checkpoint.pt: {first[:300]}"


def _prediction_numbers(p: Predictions) -> dict[str, Any]:
    counts = p.matrix.sum(axis=1)
    return {
        "available": True,
        "variant": p.variant,
        "seed": p.seed,
        "checkpoint": str(p.checkpoint),
        "dataset": p.dataset,
        "test_images": len(p.true),
        "accuracy": p.accuracy,
        "classes": p.classes,
        "confusion_matrix": p.matrix.tolist(),
        "per_class_accuracy": [
            float(p.matrix[i, i] / counts[i]) if counts[i] else None for i in range(len(p.classes))
        ],
    }


def _make_figures(
    results: StudyResults,
    analysis: dict[str, Any],
    out_dir: Path,
    predictions: Predictions | str | None,
) -> list[Figure]:
    from cnnlab.analysis import plots

    figures: list[Figure] = []
    variants = analysis["variants"]
    baseline = analysis["baseline"]
    curves = {
        v["name"]: {
            k: (v["curves"]["epoch"], v["curves"][k]["mean"], v["curves"][k]["std"])
            for k in CURVE_KEYS
            if k in v["curves"]
        }
        for v in variants
        if v["curves"]
    }
    if curves:
        plots.plot_study_curves(curves, out_dir / FIG_CURVES, baseline)
        figures.append(
            Figure(
                FIG_CURVES,
                "Training curves",
                "Loss and accuracy per epoch, train and test, for each variant: the line is the "
                "mean over seeds, the band ±1 standard deviation. Train figures are running "
                "averages during the epoch, with augmentation and dropout on.",
            )
        )
    shown = [v for v in variants if v["runs"]["total"]]
    if any(v["final_test_acc"]["mean"] is not None for v in shown):
        rows = {r["variant"]: r for r in display_rows(analysis)}
        plots.plot_final_accuracy(
            [v["name"] for v in shown],
            [v["final_test_acc"]["mean"] for v in shown],
            [(v["final_test_acc"]["ci_low"], v["final_test_acc"]["ci_high"]) for v in shown],
            [v["final_test_acc"]["values"] for v in shown],
            out_dir / FIG_ACCURACY,
            baseline,
            labels=[
                "" if v["is_baseline"] else rows[v["name"]]["verdict"].replace("—", "")
                for v in shown
            ],
        )
        figures.append(
            Figure(
                FIG_ACCURACY,
                "Final test accuracy",
                "Each variant's final test accuracy: the bar ends at the mean, the whisker is "
                "the 95% confidence interval of the mean (t distribution; none with one run), "
                "each dot one seed. The dashed line is the baseline's mean. The axis is zoomed "
                "to the data.",
            )
        )
    if isinstance(predictions, Predictions):
        p = predictions
        tag = f"'{p.variant}' seed {p.seed} on {p.dataset} ({fmt_pct(p.accuracy)} of {len(p.true)} test images)"
        plots.plot_confusion(p.matrix, p.classes, out_dir / FIG_CONFUSION, title=tag)
        figures.append(
            Figure(
                FIG_CONFUSION,
                "Confusion matrix of the best variant",
                f"{tag}. Rows are true classes, columns predicted; colour is the row-normalised "
                "rate, numbers are counts.",
            )
        )
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(p.true), size=min(GRID_IMAGES, len(p.true)), replace=False))
        n_wrong_grid = int(np.sum(p.pred[pick] != p.true[pick]))
        plots.plot_prediction_grid(
            p.images[pick], p.true[pick], p.pred[pick], p.classes, out_dir / FIG_PREDICTIONS
        )
        figures.append(
            Figure(
                FIG_PREDICTIONS,
                "Sample test predictions",
                f"{len(pick)} random test images with the predicted class (top) and the true "
                f"class; {n_wrong_grid} wrong ones are in red.",
            )
        )
        wrong = np.flatnonzero(p.pred != p.true)
        if len(wrong):
            order = wrong[np.argsort(-p.prob[wrong], kind="stable")][:WRONG_IMAGES]
            plots.plot_prediction_grid(
                p.images[order],
                p.true[order],
                p.pred[order],
                p.classes,
                out_dir / FIG_WRONG,
                probs=p.prob[order],
                cols=6,
            )
            figures.append(
                Figure(
                    FIG_WRONG,
                    "Most confidently wrong",
                    f"The {len(order)} wrong test predictions (of {len(wrong)}) the model was most "
                    "sure of, with the probability it gave the wrong class. Often these are "
                    "mislabelled or truly ambiguous images.",
                )
            )
    for fig in figures:
        fig.png = (out_dir / fig.file).read_bytes()
    return figures


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

METHOD_NOTES = [
    "Each variant is trained once per seed; the metric is the final (last-epoch) test accuracy.",
    "Mean ± sample standard deviation over seeds; the 95% confidence interval of the mean uses "
    "the t distribution with n−1 degrees of freedom (clipped to 0–100%).",
    "Each variant is compared with the baseline by Welch's t-test (no equal-variance "
    "assumption); Δ is the difference of means in percentage points with its Welch 95% CI "
    "(clipped to ±100 points).",
    "The p-values are adjusted for the number of comparisons with Holm's method; a variant is "
    "called better or worse only when the adjusted p is below alpha. Otherwise the difference "
    "is within noise: not shown to be zero, but not distinguishable from seed-to-seed variation.",
    "The best-epoch test accuracy picks the epoch by looking at the test set and is therefore "
    "optimistic; it is shown for reference, never compared.",
    "The train − test gap uses the running train accuracy of the last epoch (augmentation and "
    "dropout on), so it can be negative.",
    "'Reaches baseline final acc' is the first epoch at which the variant's mean test-accuracy "
    "curve reaches the baseline's final mean accuracy, with the wall time at that epoch.",
]


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(
    analysis: dict[str, Any], figures: Sequence[Figure] = (), generated: str = ""
) -> str:
    study = analysis["study"]
    out = [f"# Study report: {study['name']}", ""]
    meta = f"Dataset **{study['dataset']}**"
    if analysis["baseline"]:
        meta += f", baseline **{analysis['baseline']}**"
    meta += f", alpha {analysis['alpha']:g}. {analysis['metric'].capitalize()} is compared."
    out += [meta, ""]
    if study["description"]:
        out += [study["description"], ""]
    out += ["## Summary", ""]
    out += [f"- {s}" for s in analysis["summary"]] or ["- No finished runs yet."]
    out.append("")
    if analysis["warnings"]:
        out += ["**Warnings**", ""] + [f"- ⚠ {w}" for w in analysis["warnings"]] + [""]
    out += ["## Variants", ""]
    rows = display_rows(analysis)
    out += _md_table([c[1] for c in COLUMNS], [[r[k] for k, _ in COLUMNS] for r in rows])
    out.append("")
    if analysis["domains"]:
        out += ["## Accuracy per domain", ""]
        out += _md_table(
            ["variant", *analysis["domains"]],
            [[r["variant"], *(r[d] for d in analysis["domains"])] for r in domain_rows(analysis)],
        )
        out += ["", DOMAIN_NOTE, ""]
    if figures:
        out += ["## Figures", ""]
        for fig in figures:
            out += [f"### {fig.title}", "", f"![{fig.title}]({fig.file})", "", fig.caption, ""]
    pred = analysis.get("predictions")
    if pred and not pred.get("available"):
        out += [f"Predictions of the best variant are not shown: {pred['reason']}.", ""]
    if analysis["failed_runs"]:
        out += ["## Failed runs", ""]
        out += _md_table(
            ["variant", "seed", "error", "run folder"],
            [
                [r["variant"], r["seed"], r["error"] or "(no error recorded)", r["run_dir"]]
                for r in analysis["failed_runs"]
            ],
        )
        out.append("")
    out += ["## Runs", ""]
    out += _md_table(
        ["variant", "seed", "status", "final test acc", "best epoch (optimistic)", "time"],
        [
            [
                r["variant"],
                r["seed"],
                r["status"],
                fmt_pct(r["final_test_acc"]),
                "—"
                if r["best_test_acc_optimistic"] is None
                else f"{fmt_pct(r['best_test_acc_optimistic'])} @ {r['best_test_epoch']}",
                fmt_seconds(r["wall_seconds"]),
            ]
            for r in analysis["runs"]
        ],
    )
    out += ["", "## Method", ""] + [f"- {n}" for n in METHOD_NOTES] + [""]
    out.append(f"_cnnlab {analysis['cnnlab_version']}{', ' + generated if generated else ''}._")
    return "\n".join(out) + "\n"


def _jinja_env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlab.analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    analysis: dict[str, Any], figures: Sequence[Figure] = (), generated: str = ""
) -> str:
    env = _jinja_env()
    env.filters.update(pct=fmt_pct, pts=fmt_pts, pval=fmt_p, seconds=fmt_seconds)
    verdict_class = {
        stats.BETTER: "better",
        stats.WORSE: "worse",
        stats.WITHIN_NOISE: "noise",
        stats.NOT_ENOUGH_RUNS: "few",
        stats.BASELINE: "base",
    }
    return env.get_template("report.html.j2").render(
        a=analysis,
        columns=COLUMNS,
        rows=display_rows(analysis),
        domain_rows=domain_rows(analysis),
        domain_note=DOMAIN_NOTE,
        verdict_class=verdict_class,
        figures=figures,
        method_notes=METHOD_NOTES,
        generated=generated,
    )


def write_report(results: StudyResults, out_dir: Path, predictions: bool = True) -> list[Path]:
    """Write report.html, report.md and report.json (and the PNG figures) into ``out_dir``.

    Returns [report.html, report.md, report.json]. ``predictions=False`` skips
    loading the best checkpoint (no confusion matrix or image grids).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    analysis = analyze(results)
    pred: Predictions | str | None = None
    if predictions:
        pred = _predict_best(results, analysis)
        analysis["predictions"] = (
            json_safe(_prediction_numbers(pred))
            if isinstance(pred, Predictions)
            else {"available": False, "reason": pred}
        )
    else:
        analysis["predictions"] = {"available": False, "reason": "skipped on request"}
    figures = _make_figures(results, analysis, out_dir, pred)
    analysis["figures"] = [f.file for f in figures]
    generated = _dt.datetime.now().astimezone().strftime("generated %Y-%m-%d %H:%M %Z")
    paths = [out_dir / "report.html", out_dir / "report.md", out_dir / "report.json"]
    atomic_write_text(paths[0], render_html(analysis, figures, generated))
    atomic_write_text(paths[1], render_markdown(analysis, figures, generated))
    atomic_write_text(paths[2], to_json(analysis))
    return paths


def to_json(analysis: dict[str, Any]) -> str:
    return json.dumps(json_safe(analysis), indent=2, allow_nan=False) + "\n"
