"""The test-split predictions a run saves after its last epoch, for the report to reuse.

A study's report shows the confusion matrix and sample predictions of its best run. Reading
them back instead of rebuilding the model and predicting the whole test split again saves
about a second for LeNet-5 on MNIST and tens of seconds for a CIFAR-10 network with
test-time augmentation. The file is written atomically next to the run's checkpoint.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.atomic import atomic_write

if TYPE_CHECKING:  # the report reads these files without importing torch
    import torch

FILE = "test_predictions.npz"


@dataclass(frozen=True)
class SavedPredictions:
    """Predictions on the test split, in its order, after training epoch ``epoch``."""

    epoch: int
    labels: np.ndarray  # true classes
    pred: np.ndarray  # predicted classes
    prob: np.ndarray  # softmax probability of the predicted class


def save_predictions(folder: Path, logits: torch.Tensor, labels: torch.Tensor, epoch: int) -> Path:
    """Write ``folder/test_predictions.npz`` from fp32 logits (N, K) and labels (N,)."""
    top, pred = logits.float().softmax(dim=1).max(dim=1)
    arrays = {
        "epoch": np.array(epoch, dtype=np.int64),
        "labels": labels.cpu().numpy().astype(np.int64),
        "pred": pred.cpu().numpy().astype(np.int64),
        "prob": top.cpu().numpy().astype(np.float32),
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
