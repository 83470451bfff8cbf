"""`cnnlab data show`: class counts and a PNG grid of sample images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cnnlab.atomic import atomic_path
from cnnlab.data.arrays import DatasetArrays


def class_counts(data: DatasetArrays) -> list[tuple[str, int, int]]:
    """(class name, train count, test count) for every class."""
    k = data.num_classes
    train = np.bincount(data.train.labels, minlength=k)
    test = np.bincount(data.test.labels, minlength=k)
    return [(name, int(train[i]), int(test[i])) for i, name in enumerate(data.classes)]


def save_sample_grid(data: DatasetArrays, out: Path, per_class: int = 8, seed: int = 0) -> Path:
    """One row per class (at most 20 rows), ``per_class`` random training images each."""
    rng = np.random.default_rng(seed)
    classes = list(range(min(data.num_classes, 20)))
    fig, axes = plt.subplots(
        len(classes),
        per_class + 1,
        figsize=(1.1 * (per_class + 1) + 1.2, 1.1 * len(classes)),
        squeeze=False,
    )
    for row, cls in enumerate(classes):
        members = np.flatnonzero(data.train.labels == cls)
        picks = (
            rng.choice(members, size=min(per_class, len(members)), replace=False)
            if len(members)
            else []
        )
        label_ax = axes[row][0]
        label_ax.axis("off")
        label_ax.text(1.0, 0.5, data.classes[cls], ha="right", va="center", fontsize=9)
        for col in range(per_class):
            ax = axes[row][col + 1]
            ax.axis("off")
            if col < len(picks):
                img = data.train.images[picks[col]]
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                else:
                    ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
    fig.suptitle(f"{data.name}: random training images per class", fontsize=11)
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out
