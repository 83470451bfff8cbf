"""Training settings: one validated model for the CLI, TOML files and studies alike.

Errors name the key, the bad value and what is allowed, one line per problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from cnnlab.config.augment import parse_augment
from cnnlab.config.dataset import DatasetRef, parse_dataset
from cnnlab.config.problems import describe_errors
from cnnlab.errors import ConfigError


class _Strict(BaseModel):
    # inf and nan are never a setting: `--lr inf` would fail twenty steps into training.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# airbench94_muon's momentum; of lr 0.05 and 0.1 (airbench: 0.24 at batch 2,000, 16x fewer
# steps an epoch than at 128), 0.05 did better in the CIFAR-10 fast recipe (seed 0).
MUON_DEFAULTS: dict[str, float] = {"muon_lr": 0.05, "muon_momentum": 0.6}


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adam", "adamw", "muon"] = Field(
        "adam",
        description="optimizer; muon: Muon for the conv filters (muon_lr, muon_momentum; "
        "for nets with batch norm after their convolutions), SGD for the rest (lr, momentum, "
        "nesterov, weight_decay)",
    )
    lr: float = Field(1e-3, gt=0, description="base learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD, muon)")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay (decoupled for adamw)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam / AdamW betas")
    muon_lr: float = Field(
        MUON_DEFAULTS["muon_lr"], gt=0,
        description="muon: learning rate of the conv filters' orthogonalised steps",
    )  # fmt: skip
    muon_momentum: float = Field(
        MUON_DEFAULTS["muon_momentum"], ge=0, lt=1,
        description="muon: Nesterov momentum of the conv filters",
    )  # fmt: skip

    @model_validator(mode="after")
    def _options_of_the_optimizer(self) -> OptimizerConfig:
        if self.nesterov and self.name not in ("sgd", "muon"):
            raise ValueError(f"nesterov is an SGD option; with {self.name} leave it out")
        changed = [(k, v) for k, v in MUON_DEFAULTS.items() if getattr(self, k) != v]
        if changed and self.name != "muon":
            key, default = changed[0]
            raise ValueError(
                f"{key} is a muon option; with {self.name} leave it out (or set its default, "
                f"{default:g})"
            )
        return self


class ScheduleConfig(_Strict):
    name: Literal["constant", "step", "cosine", "onecycle", "linear"] = Field(
        "constant", description="learning-rate schedule"
    )
    warmup_epochs: float = Field(
        0.0, ge=0, description="linear warm-up from 0 over this many epochs, before any schedule"
    )
    step_every: int = Field(30, ge=1, description="step schedule: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step schedule: decay factor")
    final_lr_fraction: float = Field(
        0.0, ge=0, le=1, description="cosine / linear / onecycle: final lr as a fraction"
    )

    @property
    def depends_on_length(self) -> bool:
        """Whether the learning rate at a step depends on the run's total length (cosine,
        linear, onecycle do; constant and step do not)."""
        return self.name not in ("constant", "step")


TtaMode = Literal["none", "flip", "flip-translate", "translate"]
TTA_MODES: tuple[str, ...] = get_args(TtaMode)


class TrainConfig(_Strict):
    """Every setting of one training run; ``config.json`` in a run folder is this, resolved.

    The one schema: the `cnnlab train` flags (cnnlab.cli.train_flags) and the keys a
    study file accepts (cnnlab.study.plan.study_file) are derived from these fields.
    """

    dataset: str = Field(
        "mnist",
        description="mnist, fashion-mnist, cifar10, cifar100, svhn, "
        "digits-wild[:size=28,mnist=W,printed=W,svhn=W] or folder:PATH",
    )
    model: str = Field(
        "lenet5",
        description="built-in name (see `cnnlab models list`), a model .toml file, or your "
        "own factory as package.module:function",
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="builder arguments, e.g. batch_norm = true"
    )
    epochs: int = Field(10, ge=1, description="training epochs")
    max_steps: int | None = Field(
        None,
        ge=1,
        description="stop after this many optimizer steps in all (a quick smoke test: "
        "--max-steps 5); a run limited so is another run",
    )
    limit_batches: int | None = Field(
        None, ge=1, description="train on at most this many batches an epoch (a quick look)"
    )
    train_subset: int | None = Field(
        None, ge=1, description="train on the first N training images only (a quick look)"
    )
    batch_size: int = Field(128, ge=1, description="training batch size")
    eval_batch_size: int = Field(1024, ge=1, description="evaluation batch size")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the loss")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to this")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="evaluate and save an exponential moving average of the weights with "
        "this per-step decay, e.g. 0.99",
    )
    tta: TtaMode = Field(
        "none",
        description="test-time augmentation: flip averages each test image's logits with its "
        "mirror image's (2 passes); flip-translate adds 1-pixel shifts (6 passes); translate "
        "is the shifts without the mirror (3 passes: for digits and text)",
    )
    evaluate: Literal["each-epoch", "end"] = Field(
        "each-epoch",
        description="when the test split is evaluated: after each epoch (curves), or at the "
        "end only (and at kept checkpoints), which saves its time; a validation split is "
        "evaluated each epoch either way",
    )
    compile: bool = Field(
        False, description="torch.compile the training step (a warm-up of tens of seconds first)"
    )
    augment: str = Field("", description="e.g. rotate=20,translate=0.1,crop=0.8 or flip,pad=4")
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="stratified validation hold-out from the train split"
    )
    early_stopping: int | None = Field(
        None, ge=1, description="patience: stop after this many epochs without val-loss gain"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="numeric precision (auto: fastest measured for the device)"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    deterministic: bool = Field(
        False,
        description="deterministic cuDNN/cuBLAS algorithms: on CUDA a repeated or resumed run "
        "gives the same numbers, at some speed (CPU runs are deterministic anyway)",
    )
    seed: int = Field(
        0, ge=0, lt=2**32, description="fixes init, shuffling and augmentation (0 to 2^32 - 1)"
    )
    drop_last: bool = Field(True, description="drop the last incomplete training batch")
    data_dir: str | None = Field(
        None, description="folder holding <name>/<canonical files> (default $CNNLAB_DATA)"
    )
    tensorboard: bool = Field(
        False,
        description="also write TensorBoard event files into the run folder (pip install "
        "-e '.[tensorboard]'); not part of the run's identity",
    )
    keep_checkpoints: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (),
        description="epochs whose checkpoint is also kept, as checkpoint-epoch<N>.pt (shorter "
        "runs are read from them); not part of the run's identity",
    )

    @property
    def shorter_runs_are_its_start(self) -> bool:
        """Whether a run of these settings with fewer epochs is exactly the start of this
        one: the schedule does not depend on the length and no early stopping or step limit
        can end it at another point."""
        return (
            not self.schedule.depends_on_length
            and self.early_stopping is None
            and self.max_steps is None
            and self.limit_batches is None
        )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        index = value.removeprefix("cuda:")
        if value not in ("auto", "cpu", "cuda") and not (
            value.startswith("cuda:") and index.isdigit() and index.isascii()
        ):
            raise ValueError("must be auto, cpu, cuda or cuda:N with N a GPU number, e.g. cuda:0")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        try:
            parse_dataset(value)
        except ConfigError as exc:  # as a ValueError, so that pydantic collects it with the rest
            raise ValueError(str(exc)) from None
        return value

    @cached_property
    def dataset_ref(self) -> DatasetRef:
        """The dataset setting, parsed (the text stays the setting: it is hashed)."""
        return parse_dataset(self.dataset)

    @field_validator("augment")
    @classmethod
    def _augment(cls, value: str) -> str:
        try:
            return parse_augment(value).to_string()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> TrainConfig:
        if self.early_stopping is not None and self.val_fraction == 0:
            raise ValueError(
                "early_stopping needs a validation split: set val_fraction > 0 (e.g. 0.1)"
            )
        return self


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The run-config dump: ``config.json``, the store's ``config_json``, checkpoints."""
    return cfg.model_dump(mode="json")


NESTED: dict[str, type[BaseModel]] = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig}


def short_names() -> dict[str, str]:
    """Flag-style names of nested settings: "lr" -> "optimizer.lr", "warmup_epochs" ->
    "schedule.warmup_epochs" (each the name of its `cnnlab train` flag)."""
    out: dict[str, str] = {}
    for key in setting_keys():
        sub = key.partition(".")[2]
        if sub and sub != "name":
            out.setdefault(sub, key)
    return out


def nested_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as TrainConfig nests them, however they were written: a nested setting by
    its flag's name (``lr = 1e-3`` -> ``optimizer.lr``), a nested table by its name alone
    (``optimizer = "sgd"`` -> ``optimizer.name``). The same short names work in study
    files, config files, flags and the API. Unknown keys pass through for the caller."""
    short = short_names()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in NESTED and isinstance(value, str):
            value = {"name": value}
        elif key not in TrainConfig.model_fields and key in short:
            key, sub = short[key].split(".")
            value = {sub: value}
        inner = out.get(key)
        if key in NESTED and isinstance(value, Mapping) and isinstance(inner, Mapping):
            out[key] = {**inner, **value}
        else:
            out[key] = dict(value) if key in NESTED and isinstance(value, Mapping) else value
    return out


def merge_settings(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: THE rule for layering settings ([defaults] and a variant, a
    config file and flags, a config and the API's arguments). Nested tables (optimizer,
    schedule) merge key by key; ``model_args`` is replaced whole, and dropped when ``top``
    names a model without giving its arguments: another model's arguments would not fit."""
    out = dict(base)
    for key, value in top.items():
        if key != "model_args" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    if "model" in top and "model_args" not in top:
        out.pop("model_args", None)
    return out


def field_of(key: str) -> FieldInfo:
    """The schema's field of a setting key ("epochs", "optimizer.lr")."""
    top, _, sub = key.partition(".")
    return NESTED[top].model_fields[sub] if sub else TrainConfig.model_fields[top]


def flag_of(key: str) -> str:
    """The `cnnlab train` flag of a setting key: "optimizer.lr" -> --lr, "optimizer.name"
    -> --optimizer, "batch_size" -> --batch-size."""
    top, _, sub = key.partition(".")
    return "--" + (top if sub == "name" else sub or top).replace("_", "-")


def setting_keys() -> list[str]:
    """Every settable key, dotted for nested ones ("optimizer.lr"), in schema order."""
    keys: list[str] = []
    for name in TrainConfig.model_fields:
        if name in NESTED:
            keys += [f"{name}.{sub}" for sub in NESTED[name].model_fields]
        else:
            keys.append(name)
    return keys


def make_config(
    values: dict[str, Any], where: str = "settings", label: Callable[[str], str] | None = None
) -> TrainConfig:
    """Validated settings; a ConfigError naming every problem (one line each) otherwise.
    ``label`` names a key as the user wrote it (``optimizer.lr`` -> ``--lr``)."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc, where, TrainConfig, label))) from None
