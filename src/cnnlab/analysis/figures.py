"""Which figures a study report has, drawn with :mod:`cnnlab.plots`, with their captions."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import plots
from cnnlab.analysis.numbers import CURVE_KEYS, StudyNumbers
from cnnlab.analysis.tables import display_rows
from cnnlab.stats.formatting import fmt_pct
from cnnlab.study.store.predictions import Predictions

GRID_IMAGES = 24
WRONG_IMAGES = 12

FIG_CURVES = "report-curves.png"
FIG_ACCURACY = "report-accuracy.png"
FIG_CONFUSION = "report-confusion.png"
FIG_PREDICTIONS = "report-predictions.png"
FIG_WRONG = "report-confident-wrong.png"


@dataclass
class Figure:
    file: str
    title: str
    caption: str
    png: bytes = b""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def prediction_numbers(p: Predictions) -> dict[str, Any]:
    """What report.json says of the predictions shown."""
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


def _study_figures(numbers: StudyNumbers, out_dir: Path) -> list[Figure]:
    figures: list[Figure] = []
    variants, baseline = numbers.variants, numbers.baseline
    curves = {
        v.name: {
            k: (v.epochs_axis, v.curves[k].mean, v.curves[k].std)
            for k in CURVE_KEYS
            if k in v.curves
        }
        for v in variants
        if v.curves
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
    shown = [v for v in variants if v.runs.total]
    if any(v.final_test_acc.mean is not None for v in shown):
        rows = {r["variant"]: r for r in display_rows(numbers)}
        plots.plot_final_accuracy(
            [v.name for v in shown],
            [v.final_test_acc.mean for v in shown],
            [(v.final_test_acc.ci_low, v.final_test_acc.ci_high) for v in shown],
            [v.final_test_acc.values for v in shown],
            out_dir / FIG_ACCURACY,
            baseline,
            labels=[
                "" if v.is_baseline else rows[v.name]["verdict"].replace("—", "") for v in shown
            ],
        )
        figures.append(
            Figure(
                FIG_ACCURACY,
                "Final test accuracy",
                "Each variant's final test accuracy: the black dot is the mean, its whisker "
                "the 95% confidence interval of the mean (t distribution; none with one run), "
                "each coloured dot one seed. The dashed line is the baseline's mean. The axis "
                "is zoomed to the data, so compare positions, not distances from the edge.",
            )
        )
    return figures


def _prediction_figures(p: Predictions, out_dir: Path) -> list[Figure]:
    tag = (
        f"'{p.variant}' seed {p.seed}, its run nearest the variant's median accuracy, on "
        f"{p.dataset} ({fmt_pct(p.accuracy)} of {len(p.true)} test images)"
    )
    title = f"'{p.variant}' seed {p.seed} (median run): {fmt_pct(p.accuracy)}"
    plots.plot_confusion(p.matrix, p.classes, out_dir / FIG_CONFUSION, title=title)
    figures = [
        Figure(
            FIG_CONFUSION,
            "Confusion matrix of the best variant's median run",
            f"{tag}. Rows are true classes, columns predicted; colour is the row-normalised "
            "rate, numbers are counts.",
        )
    ]
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
    return figures


def make_figures(
    numbers: StudyNumbers, out_dir: Path, predictions: Predictions | str | None
) -> list[Figure]:
    """Draw the report's figures into ``out_dir``; each carries its PNG bytes for the HTML."""
    figures = _study_figures(numbers, out_dir)
    if isinstance(predictions, Predictions):
        figures += _prediction_figures(predictions, out_dir)
    for fig in figures:
        fig.png = (out_dir / fig.file).read_bytes()
    return figures
