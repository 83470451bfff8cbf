"""Batched evaluation: a model's logits over a loader, and the accuracy figures of them."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.loader import DeviceLoader
from cnnlab.evaluation.contract import tta_logits
from cnnlab.evaluation.precision import Precision


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, loader: DeviceLoader, precision: Precision, tta: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (fp32) and labels for every sample of ``loader``, in order, with test-time
    augmentation ``tta`` (see :func:`cnnlab.evaluation.contract.tta_logits`)."""
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        with precision.autocast():
            outs.append(tta_logits(model, x, tta))
        labels.append(y)
    return torch.cat(outs), torch.cat(labels)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    return loss, acc


def accuracy_by_domain(
    logits: torch.Tensor, labels: torch.Tensor, domains: np.ndarray, names: list[str]
) -> dict[str, float]:
    """Accuracy over the images of each domain that has any, in the order of ``names``."""
    correct = (logits.argmax(1) == labels).cpu().numpy()
    return {
        name: float(correct[domains == i].mean())
        for i, name in enumerate(names)
        if (domains == i).any()
    }


def domain_counts(domains: np.ndarray, names: list[str]) -> dict[str, int]:
    return {name: int((domains == i).sum()) for i, name in enumerate(names)}
