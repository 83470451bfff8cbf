"""From dataset arrays and settings to device loaders shaped for the model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnlab.config.schema import TrainConfig
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.augment import build_augment
from cnnlab.data.datasets import DataCache
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


def _shaped_splits(
    data: DatasetArrays, input_size: tuple[int, int] | None, val_fraction: float
) -> tuple[Split, Split | None, Split, Normalization]:
    """Train, validation and test splits padded for the model, and the training statistics."""
    train = shape_for_model(data.train, input_size)
    test = shape_for_model(data.test, input_size)
    val = None
    if val_fraction > 0:
        # The hold-out draw uses its own fixed seed so every seed of a study
        # validates on the same images; only training randomness varies.
        keep, held = stratified_split(train.labels, val_fraction, seed=12345)
        train, val = train.subset(keep), train.subset(held)
    return train, val, test, channel_stats(train.images)


def shaped_splits(
    data: DatasetArrays,
    input_size: tuple[int, int] | None,
    val_fraction: float,
    cache: DataCache | None = None,
) -> tuple[Split, Split | None, Split, Normalization]:
    """:func:`_shaped_splits`, shared through ``cache`` by runs on the same dataset object."""
    if cache is None:
        return _shaped_splits(data, input_size, val_fraction)
    # Keyed by the splits' identity, not equality (comparing 60k images would cost what
    # the cache saves); the cached value holds the dataset, so no other object can take
    # those ids while it is cached.
    key = ("shaped", id(data.train), id(data.test), input_size, val_fraction)
    _, shaped = cache.derived(key, lambda: (data, _shaped_splits(data, input_size, val_fraction)))
    return shaped


def make_loaders(
    cfg: TrainConfig,
    data: DatasetArrays,
    precision: Precision,
    input_size: tuple[int, int] | None = None,
    cache: DataCache | None = None,
) -> Loaders:
    train, val, test, norm = shaped_splits(data, input_size, cfg.val_fraction, cache)
    if cfg.train_subset is not None and cfg.train_subset < len(train):
        n = cfg.train_subset
        domains = None if train.domains is None else train.domains[:n]
        train = Split(train.images[:n], train.labels[:n], domains)
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
