"""What one run's steps use, built once: the model (as trained and as evaluated), its
optimizer, loss scaler and weight average, with the state a restart must restore.

The loss scaler is always there: disabled (a pass-through, as nanoGPT's
``GradScaler(enabled=...)``) unless fp16 needs it, so a step has one backward path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from cnnlab.config.schema import TrainConfig, config_dict
from cnnlab.evaluation.precision import Precision, precision_record
from cnnlab.models.layers import data_fitted_layers
from cnnlab.models.registry import ModelSpec, Summary, build_model, summarize
from cnnlab.records import EpochRow
from cnnlab.training.averaging import WeightAverage
from cnnlab.training.checkpoint import Checkpoint
from cnnlab.training.prepare import Loaders
from cnnlab.training.recipe import make_loss, make_optimizer

# Training images a patch-whitening layer is fitted to: 5,000 CIFAR images give 4.8 M
# patches, plenty for a 12 x 12 covariance, in well under a second.
WHITENING_SAMPLE = 5000


@dataclass
class RunState:
    """What must survive a restart, besides the weights and the optimizer."""

    epoch: int = 0
    step: int = 0
    history: list[EpochRow] = field(default_factory=list)
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    # Inside forward/backward/optimizer step only, and in evaluation: the rest of
    # train_seconds is the loader (batching, augmentation). On CUDA, where steps run
    # asynchronously, step_seconds counts launch time and the loader absorbs the wait.
    step_seconds: float = 0.0
    eval_seconds: float = 0.0

    def trainer_state(self) -> dict[str, Any]:
        """The checkpoint's ``trainer_state``: everything but the counters and history."""
        return {
            "best_val_loss": self.best_val_loss,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "step_seconds": self.step_seconds,
            "eval_seconds": self.eval_seconds,
        }

    @classmethod
    def of(cls, ckpt: Checkpoint) -> RunState:
        state = cls(
            epoch=ckpt.epoch,
            step=ckpt.step,
            history=[EpochRow.from_dict(r) for r in ckpt.history or []],
        )
        for key, value in (ckpt.trainer_state or {}).items():
            setattr(state, key, value)
        return state


@dataclass
class Trainer:
    """One run's model and everything that updates it."""

    cfg: TrainConfig
    spec: ModelSpec
    precision: Precision
    loaders: Loaders
    model: nn.Module
    forward: nn.Module  # the model as called for training: compiled, or the model itself
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # a pass-through unless fp16
    average: WeightAverage | None
    loss_fn: nn.Module
    size: Summary  # parameters and multiply-accumulates per image

    @property
    def evaluated(self) -> nn.Module:
        """What evaluation scores and the checkpoint's inference uses: the average if any."""
        return self.model if self.average is None else self.average.model

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loaders.train)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch; its logits and loss (not yet synchronised)."""
        if self.forward is not self.model and not self.cfg.drop_last:
            # The short last batch would otherwise compile the model a second time.
            torch._dynamo.maybe_mark_dynamic(x, 0)
        with self.precision.autocast():
            logits = self.forward(x)
            loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return logits, loss

    def restore(self, ckpt: Checkpoint) -> RunState:
        """The weights, optimizer, average and loss scale of ``ckpt``; its run state."""
        self.model.load_state_dict(ckpt.state_dict)
        if self.average is not None and ckpt.averaged_state_dict is not None:
            self.average.load_state_dict(ckpt.averaged_state_dict)
        if ckpt.optimizer_state is not None:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        if self.scaler.is_enabled() and ckpt.scaler_state:
            self.scaler.load_state_dict(ckpt.scaler_state)
        return RunState.of(ckpt)

    def checkpoint(self, state: RunState) -> Checkpoint:
        loaders = self.loaders
        return Checkpoint(
            model_spec=self.spec.model_dump(mode="json"),
            classes=loaders.classes,
            input_shape=loaders.input_shape,
            normalization=loaders.normalization,
            state_dict=self.model.state_dict(),
            config=config_dict(self.cfg),
            epoch=state.epoch,
            step=state.step,
            history=[r.to_dict() for r in state.history],
            optimizer_state=self.optimizer.state_dict(),
            trainer_state=state.trainer_state(),
            averaged_state_dict=None if self.average is None else self.average.state_dict(),
            scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            trained_on=precision_record(self.precision),
        )


def build_trainer(
    cfg: TrainConfig, spec: ModelSpec, loaders: Loaders, precision: Precision
) -> Trainer:
    """The run's model, seeded by its seed, on its device, with its optimizer."""
    torch.manual_seed(cfg.seed)
    model = build_model(spec, loaders.input_shape, len(loaders.classes))
    for layer in data_fitted_layers(model):  # a resumed run then loads the fitted filters
        layer.fit(loaders.train.head(WHITENING_SAMPLE))
    size = summarize(model, loaders.input_shape)
    model = model.to(precision.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg.optimizer)
    average = None if cfg.ema_decay is None else WeightAverage(model, cfg.ema_decay)
    # Compiling costs a warm-up in the first steps (counted in epoch 1's time); evaluation
    # stays eager so its other batch shapes trigger no recompilation.
    forward = cast(nn.Module, torch.compile(model)) if cfg.compile else model
    scaler = torch.amp.GradScaler(precision.device.type, enabled=precision.grad_scaling)
    return Trainer(
        cfg=cfg, spec=spec, precision=precision, loaders=loaders, model=model, forward=forward,
        optimizer=optimizer, scaler=scaler, average=average,
        loss_fn=make_loss(cfg.label_smoothing), size=size,
    )  # fmt: skip
