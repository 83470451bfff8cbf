"""The in-memory form every reader returns: uint8 images (N, C, H, W) and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split of a dataset. ``images`` is uint8 (N, C, H, W); ``labels`` int64 (N,).

    ``domains``, when set, is int64 (N,): each image's index into the dataset's
    ``domain_names`` (a composite dataset such as ``digits-wild`` reports accuracy per part).
    """

    images: np.ndarray
    labels: np.ndarray
    domains: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ValueError(
                f"labels must be int64 (N,), got {self.labels.dtype} {self.labels.shape}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.domains is not None and (
            self.domains.dtype != np.int64 or self.domains.shape != self.labels.shape
        ):
            raise ValueError(
                f"domains must be int64 {self.labels.shape}, got "
                f"{self.domains.dtype} {self.domains.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.images.shape
        return (c, h, w)

    def subset(self, index: np.ndarray) -> Split:
        domains = None if self.domains is None else self.domains[index]
        return Split(self.images[index], self.labels[index], domains)

    def with_images(self, images: np.ndarray) -> Split:
        """The same samples (labels, domains) with transformed images, e.g. padded."""
        return Split(images, self.labels, self.domains)


@dataclass(frozen=True)
class DatasetArrays:
    """A whole dataset: train and test splits plus class names and where it came from."""

    name: str
    train: Split
    test: Split
    classes: list[str]
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    domain_names: list[str] = field(default_factory=list)  # what Split.domains index

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.shape

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_splits(data: DatasetArrays) -> DatasetArrays:
    """``data`` if its splits fit together, else a DataError naming the dataset and its files:
    both splits hold images, of one shape (C, H, W), with labels of its classes."""
    from cnnlab.errors import DataError

    where = f"{data.name} ({data.source})" if data.source else data.name

    def shape_text(split: Split) -> str:
        return "x".join(map(str, split.shape))

    if len(data.classes) < 2:
        raise DataError(
            f"{where}: it has {len(data.classes)} class ({', '.join(data.classes) or 'none'}); "
            "a classifier needs at least two"
        )
    for name, split in (("train", data.train), ("test", data.test)):
        if len(split) == 0:
            raise DataError(
                f"{where}: the {name} split holds no images; a dataset needs images in both "
                "its train and its test split"
            )
        labels = split.labels
        if labels.min() < 0 or labels.max() >= len(data.classes):
            raise DataError(
                f"{where}: {name} labels run from {labels.min()} to {labels.max()} but there "
                f"are {len(data.classes)} classes; the labels and the class list disagree"
            )
    if data.train.shape != data.test.shape:
        raise DataError(
            f"{where}: test images are {shape_text(data.test)} but train images "
            f"{shape_text(data.train)}; both splits must hold images of one shape"
        )
    return data
