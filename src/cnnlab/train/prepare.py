"""From dataset arrays and settings to device loaders shaped for the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.config.schema import TrainConfig
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.augment import build_augment
from cnnlab.data.loader import DeviceLoader, Normalization, channel_stats, stratified_split
from cnnlab.errors import ConfigError
from cnnlab.evaluation.contract import shape_for_model
from cnnlab.evaluation.precision import Precision


@dataclass
class Loaders:
    train: DeviceLoader
    val: DeviceLoader | None
    test: DeviceLoader
    classes: list[str]
    input_shape: tuple[int, int, int]
    normalization: Normalization
    test_domains: np.ndarray | None = None  # per test image, index into domain_names
    domain_names: list[str] = field(default_factory=list)


# The last shaped splits: the runs of a study share one dataset, and padding and channel
# statistics of 60k MNIST images cost 0.4-0.5 s a run (1.5% of a small LeNet-5 study).
# Keyed by the split objects' identity, not equality; the key holds them, so no other
# object can take their ids while it is cached.
_last_shaped: tuple[tuple[Any, ...], tuple[Split, Split | None, Split, Normalization]] | None = None


def _shaped_splits(
    data: DatasetArrays, input_size: tuple[int, int] | None, val_fraction: float
) -> tuple[Split, Split | None, Split, Normalization]:
    """Train, validation and test splits padded for the model, and the training statistics."""
    global _last_shaped
    key = (data.train, data.test, input_size, val_fraction)
    if _last_shaped is not None:
        (train0, test0, *settings), shaped = _last_shaped
        if train0 is data.train and test0 is data.test and settings == [input_size, val_fraction]:
            return shaped
    train = shape_for_model(data.train, input_size)
    test = shape_for_model(data.test, input_size)
    val = None
    if val_fraction > 0:
        # The hold-out draw uses its own fixed seed so every seed of a study
        # validates on the same images; only training randomness varies.
        keep, held = stratified_split(train.labels, val_fraction, seed=12345)
        train, val = train.subset(keep), train.subset(held)
    shaped = (train, val, test, channel_stats(train.images))
    _last_shaped = (key, shaped)
    return shaped


def make_loaders(
    cfg: TrainConfig,
    data: DatasetArrays,
    precision: Precision,
    input_size: tuple[int, int] | None = None,
) -> Loaders:
    train, val, test, norm = _shaped_splits(data, input_size, cfg.val_fraction)
    if cfg.early_stopping is not None and val is None:
        raise ConfigError(
            "early_stopping needs a validation split: set val_fraction > 0 (e.g. 0.1)"
        )
    if len(train) < cfg.batch_size and cfg.drop_last:
        raise ConfigError(
            f"batch_size {cfg.batch_size} is larger than the {len(train)} training images; "
            "lower batch_size or set drop_last = false"
        )
    augment = build_augment(cfg.augment)
    common = {"norm": norm, "device": precision.device, "channels_last": precision.channels_last}
    eval_bs = cfg.eval_batch_size
    return Loaders(
        train=DeviceLoader(
            train,
            batch_size=cfg.batch_size,
            shuffle=True,
            seed=cfg.seed,
            drop_last=cfg.drop_last,
            augment=augment,
            **common,
        ),
        val=DeviceLoader(val, batch_size=eval_bs, **common) if val is not None else None,
        test=DeviceLoader(test, batch_size=eval_bs, **common),
        classes=list(data.classes),
        input_shape=train.shape,
        normalization=norm,
        test_domains=test.domains if data.domain_names else None,
        domain_names=list(data.domain_names),
    )
