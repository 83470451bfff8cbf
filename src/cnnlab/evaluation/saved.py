"""The test-split predictions a run saves after its last epoch, for the report to reuse.

A study's report shows the confusion matrix and sample predictions of its best run. Reading
them back (0.4 s with the test set, measured for an MLP on Fashion-MNIST) replaces
rebuilding the model and predicting the whole test split again: 1.0 s for LeNet-5 on MNIST
(profiled), 37 s for the CIFAR-10 fast-long network with flip test-time augmentation (its
per-epoch evaluation). The file is written atomically next to the run's checkpoint.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.atomic import atomic_write
from cnnlab.records import ARTIFACTS

if TYPE_CHECKING:  # the report reads these files without importing torch
    import torch

FILE = ARTIFACTS["predictions"]


def confusion_matrix(pred: np.ndarray, true: np.ndarray, k: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class SavedPredictions:
    """Predictions on the test split, in its order, after training epoch ``epoch``."""

    epoch: int
    labels: np.ndarray  # true classes
    pred: np.ndarray  # predicted classes
    prob: np.ndarray  # softmax probability of the predicted class

    @classmethod
    def from_logits(
        cls, logits: torch.Tensor, labels: torch.Tensor, epoch: int
    ) -> SavedPredictions:
        """The top class and its softmax probability of each row of fp32 logits (N, K)."""
        top, pred = logits.float().softmax(dim=1).max(dim=1)
        return cls(
            epoch,
            labels.cpu().numpy().astype(np.int64),
            pred.cpu().numpy().astype(np.int64),
            top.cpu().numpy().astype(np.float32),
        )


def save_predictions(folder: Path, logits: torch.Tensor, labels: torch.Tensor, epoch: int) -> Path:
    """Write ``folder/test_predictions.npz`` from fp32 logits (N, K) and labels (N,)."""
    saved = SavedPredictions.from_logits(logits, labels, epoch)
    arrays = {
        "epoch": np.array(epoch, dtype=np.int64),
        "labels": saved.labels,
        "pred": saved.pred,
        "prob": saved.prob,
    }
    path = Path(folder) / FILE
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_predictions(folder: Path) -> SavedPredictions | None:
    """The saved predictions, or None when there are none or the file cannot be read."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            result = SavedPredictions(
                int(saved["epoch"]), saved["labels"], saved["pred"], saved["prob"]
            )
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if not len(result.labels) == len(result.pred) == len(result.prob):
        return None
    return result
