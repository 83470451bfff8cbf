"""Self-describing checkpoints: everything `predict` and `evaluate` need, nothing pickled.

A checkpoint holds the model spec (name, arguments, or its TOML layers),
class names, input shape, normalisation and the weights; a training
checkpoint adds the optimizer state, the step count and the metric history
so that a run can resume. Only tensors and plain containers go in, so it
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_path
from cnnlab.data.loader import Normalization
from cnnlab.errors import DataError

FORMAT = "cnnlab-checkpoint/1"


@dataclass
class Checkpoint:
    model_spec: dict[str, Any]
    classes: list[str]
    input_shape: tuple[int, int, int]
    normalization: Normalization
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    history: list[dict[str, float]] | None = None
    optimizer_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] | None = None  # early stopping, best metrics
    averaged_state_dict: dict[str, torch.Tensor] | None = None  # with ema_decay set

    def build_model(self) -> nn.Module:
        """The model for inference: the averaged weights when the run averaged them (those
        are what training evaluated and reported), else the trained ones."""
        from cnnlab.models.registry import ModelSpec, build_model

        spec = ModelSpec.model_validate(self.model_spec)
        model = build_model(spec, self.input_shape, len(self.classes))
        model.load_state_dict(self.averaged_state_dict or self.state_dict)
        return model.eval()


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    payload = {
        "format": FORMAT,
        "model": ckpt.model_spec,
        "classes": list(ckpt.classes),
        "input_shape": list(ckpt.input_shape),
        "normalization": ckpt.normalization.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "config": ckpt.config,
        "epoch": ckpt.epoch,
        "step": ckpt.step,
        "history": ckpt.history or [],
        "optimizer": ckpt.optimizer_state,
        "trainer": ckpt.trainer_state or {},
        "averaged_state_dict": None
        if ckpt.averaged_state_dict is None
        else {k: v.detach().cpu() for k, v in ckpt.averaged_state_dict.items()},
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file; pass the checkpoint.pt of a run folder")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable cnnlab checkpoint ({first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a cnnlab checkpoint (no '{FORMAT}' marker)")
    norm = payload["normalization"]
    c, h, w = payload["input_shape"]
    return Checkpoint(
        model_spec=payload["model"],
        classes=list(payload["classes"]),
        input_shape=(c, h, w),
        normalization=Normalization(tuple(norm["mean"]), tuple(norm["std"])),
        state_dict=payload["state_dict"],
        config=payload["config"],
        epoch=payload["epoch"],
        step=payload["step"],
        history=payload["history"],
        optimizer_state=payload["optimizer"],
        trainer_state=payload["trainer"],
        averaged_state_dict=payload.get("averaged_state_dict"),
    )
