"""A dataset from numpy arrays (``cnnlab.Dataset.from_arrays``), checked like a file's.

Images may be (N, H, W) gray, (N, H, W, C) as Keras and PIL hold them, or (N, C, H, W)
(C of 1, 3 or 4 tells which); uint8 0-255 or floats in [0, 1]. Labels are integers
0 .. classes - 1. The dataset's name carries a hash of its content, so the run identity
of a run on other arrays differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cnnlab.config.dataset import ARRAYS_PREFIX
from cnnlab.data.arrays import DatasetArrays, Split, check_splits
from cnnlab.errors import DataError

CHANNELS = (1, 3, 4)


# Labels implying more classes than this must use at least half of them, or say classes=:
# one label 1,000,000 among 0-9 would otherwise build a million-way output layer.
SPARSE_CLASSES = 100


def _images(x: object, what: str) -> np.ndarray:
    array = np.asarray(x)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[1] not in CHANNELS and array.shape[3] in CHANNELS:
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in CHANNELS:
        raise DataError(
            f"{what}: images of shape {array.shape} are not (N, H, W), (N, H, W, C) or "
            "(N, C, H, W) with C = 1, 3 or 4"
        )
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{what}: images of dtype {array.dtype}; give uint8 or floats in [0, 1]")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise DataError(
                f"{what}: float images must lie in [0, 1] (found {array.min():g} to "
                f"{array.max():g}); divide 0-255 images by 255 or pass them as uint8"
            )
        return np.ascontiguousarray(np.round(array * 255).astype(np.uint8))
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"{what}: integer images must lie in 0-255")
    return np.ascontiguousarray(array.astype(np.uint8))


def _labels(y: object, n: int, what: str) -> np.ndarray:
    labels = np.asarray(y).reshape(-1)
    if len(labels) != n:
        raise DataError(f"{what}: {n} images but {len(labels)} labels")
    whole = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and bool(np.all(labels == np.round(labels)))
    )
    if not whole:
        raise DataError(f"{what}: labels must be whole numbers 0 .. classes - 1")
    return labels.astype(np.int64)


def from_arrays(
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    classes: Sequence[str] | int | None = None,
    name: str = "arrays",
) -> DatasetArrays:
    train_images, test_images = _images(x_train, "x_train"), _images(x_test, "x_test")
    train = Split(train_images, _labels(y_train, len(train_images), "y_train"))
    test = Split(test_images, _labels(y_test, len(test_images), "y_test"))
    if classes is None:
        classes = int(max(train.labels.max(), test.labels.max())) + 1
        used = len(np.union1d(train.labels, test.labels))
        if classes > SPARSE_CLASSES and used < classes / 2:
            raise DataError(
                f"y_train/y_test: the labels go up to {classes - 1}, which makes {classes} "
                f"classes, but only {used} of them occur; number the classes 0 .. {used - 1} "
                "or pass classes= (their names, or how many there are)"
            )
    names = (
        [str(c) for c in range(classes)] if isinstance(classes, int) else [str(c) for c in classes]
    )
    digest = hashlib.sha256()
    for part in (train.images, train.labels, test.images, test.labels):
        digest.update(part.tobytes())
    digest.update("\0".join(names).encode())
    data = DatasetArrays(
        name=f"{ARRAYS_PREFIX}{name}#{digest.hexdigest()[:12]}",
        train=train,
        test=test,
        classes=names,
        source="numpy arrays",
    )
    return check_splits(data)
