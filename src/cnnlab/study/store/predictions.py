"""The test-set predictions a study's report shows: those of the best variant's first seed.

The report receives them (it loads no dataset and no checkpoint itself). They come from
the run's saved ``test_predictions.npz`` when it is of the run's final model and of the
test split as it loads now (no torch is imported then), else from its checkpoint,
predicting the test split again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.data.arrays import DatasetArrays
from cnnlab.errors import CnnlabError
from cnnlab.evaluation.saved import FILE as PREDICTIONS_FILE
from cnnlab.evaluation.saved import SavedPredictions, confusion_matrix, load_predictions
from cnnlab.records import ARTIFACTS
from cnnlab.study.store.results import RunResult, StudyResults


@dataclass
class Predictions:
    """Test-set predictions of one run, with the images for display."""

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


def _dataset_of(run: RunResult) -> DatasetArrays:
    from cnnlab.data.datasets import load_dataset

    data_dir = run.config.get("data_dir")
    return load_dataset(run.config["dataset"], Path(data_dir) if data_dir else None)


def _bundle(
    run: RunResult, data: DatasetArrays, classes: list[str], predicted: SavedPredictions
) -> Predictions:
    return Predictions(
        variant=run.variant,
        seed=run.seed,
        checkpoint=Path(run.run_dir) / ARTIFACTS["checkpoint"],
        dataset=data.name,
        classes=classes,
        images=data.test.images,
        true=predicted.labels,
        pred=predicted.pred,
        prob=predicted.prob,
        matrix=confusion_matrix(predicted.pred, predicted.labels, len(classes)),
    )


def _saved(run: RunResult) -> Predictions | None:
    saved = load_predictions(Path(run.run_dir))
    summary = run.summary
    if saved is None or summary is None or saved.epoch != summary.epochs or not summary.classes:
        return None
    data = _dataset_of(run)
    if not np.array_equal(data.test.labels, saved.labels):
        return None
    return _bundle(run, data, list(summary.classes), saved)


def predict_run(run: RunResult, device: str = "cpu") -> Predictions:
    """Predictions of ``run`` on its test split: saved ones when they can be trusted, else
    from its checkpoint. Raises CnnlabError (or OSError) when the checkpoint or the data
    are missing."""
    saved = _saved(run)
    if saved is not None:
        return saved
    from cnnlab.inference.evaluate import predict_test_split
    from cnnlab.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(run.run_dir) / ARTIFACTS["checkpoint"])
    if not ckpt.config.get("dataset") and run.config.get("dataset"):
        ckpt.config = {**ckpt.config, "dataset": run.config["dataset"]}
    result = predict_test_split(ckpt, device=device)
    predicted = SavedPredictions.from_logits(result.logits, result.labels, ckpt.epoch)
    return _bundle(run, result.dataset, list(ckpt.classes), predicted)


def median_run(runs: list[RunResult]) -> RunResult:
    """The run at the median final test accuracy: with an even number of runs the lower of
    the two middle ones (ties in accuracy: the lower seed)."""
    ranked = sorted(runs, key=lambda r: (r.final_test_acc or 0.0, r.seed))
    return ranked[(len(ranked) - 1) // 2]


def best_predictions(results: StudyResults, best: str | None) -> Predictions | str:
    """Predictions of variant ``best``'s median run (the finished seed whose final test
    accuracy is nearest the variant's median, the lower seed on a tie), or why there are
    none: the figures then show a typical run, not a lucky one."""
    if best is None:
        return "no finished runs"
    runs = [
        r
        for r in results.runs_of(best, "done")
        if r.summary is not None
        and any(
            (Path(r.run_dir) / name).is_file()
            for name in (PREDICTIONS_FILE, ARTIFACTS["checkpoint"])
        )
    ]
    if not runs:
        return f"no checkpoint.pt found in the finished runs of '{best}'"
    run = median_run(runs)
    try:
        return predict_run(run)
    except (CnnlabError, OSError, RuntimeError, KeyError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"could not predict with {run.run_dir}/checkpoint.pt: {first[:300]}"
