"""Expanding a study: variants over defaults, grid points, paths made absolute, epochs
scaled. Pure functions over setting dicts; :mod:`cnnlab.study.plan.study_file` uses them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlab.config.dataset import parse_dataset
from cnnlab.config.identity import canonical_json
from cnnlab.config.schema import TrainConfig
from cnnlab.errors import ConfigError


def grid_labels(keys: list[str]) -> list[str]:
    """The short label of each grid key in variant names: its last part ("lr" for
    optimizer.lr; a table's "name" is the table: "optimizer" for optimizer.name), unless
    two keys would share it."""
    last = [k.split(".")[-2] if k.endswith(".name") else k.split(".")[-1] for k in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return canonical_json(value)


def is_model_path(name: str) -> bool:
    # The rule of cnnlab.models.registry.resolve_model.
    return name.endswith(".toml") or "/" in name or "\\" in name


def absolute_value(key: str, value: Any, base: Path) -> Any:
    """A study file's model file and data_dir paths, relative to the study file's folder
    ``base``, made absolute; other values as they are."""
    if key == "model" and isinstance(value, str) and is_model_path(value):
        return str((base / Path(value).expanduser()).resolve())
    if key == "data_dir" and isinstance(value, str):
        return str((base / Path(value).expanduser()).resolve())
    return value


def absolute_dataset(dataset: str, where: str, base: Path) -> str:
    try:
        return parse_dataset(dataset).relative_to(base).text
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def set_dotted(settings: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(settings)
    parts = key.split(".")
    if len(parts) == 1:
        out[key] = value
        return out
    inner = dict(out.get(parts[0]) or {})
    inner[parts[1]] = value
    out[parts[0]] = inner
    return out


def scaled_epochs(epochs: int, scale: float) -> int:
    """``epochs`` times ``scale``, rounded half up, at least 1."""
    return max(1, math.floor(epochs * scale + 0.5))


def scaled_config(cfg: TrainConfig, scale: float) -> TrainConfig:
    """``cfg`` with epochs scaled (:func:`scaled_epochs`) and the epoch-based schedule
    lengths stretched by the factor the epochs actually changed."""
    epochs = scaled_epochs(cfg.epochs, scale)
    # In this order of operations: run ids hash the resulting floats.
    schedule = cfg.schedule.model_copy(
        update={
            "warmup_epochs": cfg.schedule.warmup_epochs * epochs / cfg.epochs,
            "step_every": max(1, math.floor(cfg.schedule.step_every * epochs / cfg.epochs + 0.5)),
        }
    )
    scaled = cfg.model_copy(update={"epochs": epochs, "schedule": schedule})
    # Validated once more: scaled runs were always re-validated, which canonicalises
    # defaults (augment "" -> "none"); their run ids hash that form and must not move.
    return TrainConfig.model_validate(scaled.model_dump(mode="json"))
