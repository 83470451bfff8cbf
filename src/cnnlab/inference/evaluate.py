"""`cnnlab evaluate`: a checkpoint on a dataset's test split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import load_dataset
from cnnlab.data.loader import DeviceLoader
from cnnlab.errors import DataError
from cnnlab.evaluation.contract import shape_for_model
from cnnlab.evaluation.metrics import (
    accuracy_by_domain,
    domain_counts,
    loss_and_accuracy,
    predict_logits,
)
from cnnlab.evaluation.precision import run_precision
from cnnlab.evaluation.saved import confusion_matrix
from cnnlab.plots import plot_confusion
from cnnlab.training.checkpoint import Checkpoint, load_checkpoint


@dataclass
class Evaluation:
    dataset: str
    loss: float
    accuracy: float
    per_class: list[tuple[str, float, int]]  # (class, accuracy, test images)
    confusion_png: Path
    per_domain: list[tuple[str, float, int]] = field(default_factory=list)  # composite datasets


@dataclass
class SplitPredictions:
    """A checkpoint's fp32 logits on a dataset's test split, with what produced them."""

    checkpoint: Checkpoint
    dataset: DatasetArrays
    logits: torch.Tensor
    labels: torch.Tensor


def predict_test_split(
    ckpt: Checkpoint,
    dataset: str | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    precision_name: str | None = None,
) -> SplitPredictions:
    """Run ``ckpt`` over the test split of ``dataset`` (default: the one it was trained on)."""
    name = dataset or ckpt.config.get("dataset", "")
    if data_dir is None and ckpt.config.get("data_dir"):
        data_dir = Path(ckpt.config["data_dir"])
    data = load_dataset(name, data_dir)
    c, h, w = ckpt.input_shape
    test = shape_for_model(data.test, (h, w))
    if test.shape != ckpt.input_shape:
        raise DataError(
            f"{name}: images are {'x'.join(map(str, test.shape))} but {ckpt.source or 'the model'}"
            f" takes {c}x{h}x{w}; evaluate on a dataset of the same image shape"
        )
    if len(data.classes) != len(ckpt.classes):
        raise DataError(
            f"{name} has {len(data.classes)} classes but {ckpt.source or 'the model'} was trained "
            f"on {len(ckpt.classes)} ({ckpt.config.get('dataset', '?')}); evaluate it on a "
            "dataset with its classes"
        )
    precision = run_precision(ckpt.config, device, precision_name, ckpt.trained_on)
    model = ckpt.build_model().to(precision.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = DeviceLoader(
        test,
        ckpt.normalization,
        batch_size=int(ckpt.config.get("eval_batch_size") or 1024),
        device=precision.device,
        channels_last=precision.channels_last,
    )
    logits, labels = predict_logits(model, loader, precision, ckpt.config.get("tta", "none"))
    return SplitPredictions(ckpt, data, logits, labels)


def evaluate_checkpoint(
    path: Path,
    dataset: str | None = None,
    data_dir: Path | None = None,
    out: Path | None = None,
    device: str = "auto",
    precision: str | None = None,
) -> Evaluation:
    ckpt = load_checkpoint(path)
    result = predict_test_split(ckpt, dataset, data_dir, device, precision)
    name = result.dataset.name if dataset is None else dataset
    loss, acc = loss_and_accuracy(result.logits, result.labels)
    pred = result.logits.argmax(1).cpu().numpy()
    true = result.labels.cpu().numpy()
    matrix = confusion_matrix(pred, true, len(ckpt.classes))
    counts = matrix.sum(axis=1)
    per_class = [
        (cls, float(matrix[i, i] / counts[i]) if counts[i] else float("nan"), int(counts[i]))
        for i, cls in enumerate(ckpt.classes)
    ]
    per_domain = []
    domains = result.dataset.test.domains
    if domains is not None and result.dataset.domain_names:
        names = result.dataset.domain_names
        accs = accuracy_by_domain(result.logits, result.labels, domains, names)
        counts_by_domain = domain_counts(domains, names)
        per_domain = [(d, acc, counts_by_domain[d]) for d, acc in accs.items()]
    png = out or Path(path).with_name(f"confusion-{name.replace(':', '_').replace('/', '_')}.png")
    title = f"{ckpt.model_spec.get('name', '')} on {name}: {100 * acc:.2f}%"
    plot_confusion(matrix, ckpt.classes, png, title=title)
    return Evaluation(name, loss, acc, per_class, png, per_domain)
