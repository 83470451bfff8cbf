"""Figures written as PNG files (Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cnnlab.atomic import atomic_path


def _save(fig: plt.Figure, out: Path, dpi: int = 100) -> Path:
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return out


def plot_run_curves(history: Sequence[dict[str, Any]], out: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch for train, test and (when present) validation."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("val", ":"), ("test", "--")):
        if history and history[0].get(f"{split}_loss") is not None:
            ax_loss.plot(
                epochs, [r[f"{split}_loss"] for r in history], style, marker=".", label=split
            )
            ax_acc.plot(
                epochs, [100 * r[f"{split}_acc"] for r in history], style, marker=".", label=split
            )
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], out: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts; rows are true classes."""
    k = len(classes)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    return _save(fig, out)
