"""Training settings: one validated model for the CLI, TOML files and studies alike.

Errors name the key, the bad value and what is allowed, on one line.
"""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cnnlab.config.dataset import DatasetRef, parse_dataset
from cnnlab.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam / AdamW only


class ScheduleConfig(_Strict):
    name: Literal["constant", "step", "cosine", "onecycle", "linear"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0)  # linear warm-up from 0, before any schedule
    step_every: int = Field(30, ge=1)  # step: epochs between decays
    gamma: float = Field(0.1, gt=0, le=1)  # step: decay factor
    final_lr_fraction: float = Field(0.0, ge=0, le=1)  # cosine / linear / onecycle end point


TtaMode = Literal["none", "flip", "flip-translate"]
TTA_MODES: tuple[str, ...] = get_args(TtaMode)


class TrainConfig(_Strict):
    """Every setting of one training run; ``config.json`` in a run folder is this, resolved."""

    dataset: str = "mnist"
    model: str = "lenet5"
    model_args: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)  # max global grad norm
    # Evaluate (and save for inference) an exponential moving average of the weights with
    # this per-step decay, e.g. 0.99; None trains and evaluates the raw weights.
    ema_decay: float | None = Field(None, gt=0, lt=1)
    tta: TtaMode = "none"  # test-time augmentation of val/test predictions (prepare.tta_logits)
    compile: bool = False  # torch.compile the training step (see benchmarks/precision.py)
    augment: str = ""  # e.g. "rotate=20,translate=0.1,crop=0.8"
    val_fraction: float = Field(0.0, ge=0, lt=1)  # stratified hold-out from train
    early_stopping: int | None = Field(None, ge=1)  # patience in epochs, on validation loss
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    seed: int = 0
    drop_last: bool = True
    data_dir: str | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        parse_dataset(value)  # one line naming what is allowed, before anything runs
        return value

    @cached_property
    def dataset_ref(self) -> DatasetRef:
        """The dataset setting, parsed (the text stays the setting: it is hashed)."""
        return parse_dataset(self.dataset)

    @field_validator("augment")
    @classmethod
    def _augment(cls, value: str) -> str:
        from cnnlab.config.augment import parse_augment

        return parse_augment(value).to_string()


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """The first problem pydantic found, as one line a person can act on."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        return f"{where}: unknown setting '{key}'; allowed: {', '.join(allowed)}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: {key} = {err['input']!r} is not allowed; use one of {expected}"
    return f"{where}: {key} = {err.get('input')!r}: {err['msg']}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = TrainConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return list(model.model_fields)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The run-config dump: ``config.json``, the store's ``config_json``, checkpoints."""
    return cfg.model_dump(mode="json")


def make_config(values: dict[str, Any], where: str = "settings") -> TrainConfig:
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, where)) from None


def read_toml_text(path: Path) -> tuple[str, dict[str, Any]]:
    """A TOML file's text and its parsed tables; I/O, encoding and syntax problems as one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (TOML must be UTF-8)") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror or exc}); pass a TOML file"
        ) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_toml(path: Path) -> dict[str, Any]:
    return read_toml_text(path)[1]


def load_config_file(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A config file, with command-line ``overrides`` (already nested) applied on top."""
    values = read_toml(path)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return make_config(values, where=str(path))
