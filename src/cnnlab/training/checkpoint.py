"""Self-describing checkpoints: everything `predict` and `evaluate` need, nothing pickled.

A checkpoint holds the model spec (name, arguments, or its TOML layers),
class names, input shape, normalisation and the weights; a training
checkpoint adds the optimizer state, the step count and the metric history
so that a run can resume. Only tensors and plain containers go in, so it
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_path
from cnnlab.data.loader import Normalization
from cnnlab.errors import CnnlabError, DataError

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
    # fp16's loss scale and its growth tracker: a resumed run goes on with the scale it had
    # reached instead of starting again from 2^16 (and skipping steps to find it).
    scaler_state: dict[str, Any] | None = None
    # What "auto" resolved to (evaluation.precision.precision_record): a resume on another
    # kind of machine is refused, and evaluate re-scores in exactly this precision.
    trained_on: dict[str, Any] | None = None
    source: str = ""  # the file it was read from, for messages; not saved

    def build_model(self) -> nn.Module:
        """The model for inference: the averaged weights when the run averaged them (those
        are what training evaluated and reported), else the trained ones."""
        from cnnlab.models.factories import import_factory
        from cnnlab.models.registry import ModelSpec, build_model

        label = self.source or "the checkpoint"
        factory = self.model_spec.get("factory") if isinstance(self.model_spec, dict) else None
        if isinstance(factory, str):
            import_factory(factory)  # one line of its own when your model's code is not here
        try:
            spec = ModelSpec.model_validate(self.model_spec)
            model = build_model(spec, self.input_shape, len(self.classes))
            model.load_state_dict(self.averaged_state_dict or self.state_dict)
        except (CnnlabError, RuntimeError, ValueError) as exc:
            first = _first_reason(exc)
            raise DataError(
                f"{label}: its weights do not fit the model it names ({first}); "
                "the file is damaged or was edited"
            ) from None
        return model.eval()


def _first_reason(exc: BaseException) -> str:
    """The first line of an error, or for torch's state_dict mismatch ("Error(s) in loading
    state_dict for X:" then a line per problem) the first problem: which key, which shape."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1:
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        return f"{lines[1]}{more}"[:300]
    return lines[0][:300]


# Below this much free space a failed checkpoint write is the disk being full.
MIN_FREE_BYTES = 1 << 20


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
        "scaler": ckpt.scaler_state,
        "trained_on": ckpt.trained_on,
    }
    with atomic_path(path, suffix=".pt") as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch's zip writer says "unexpected pos", not ENOSPC
            if shutil.disk_usage(tmp.parent).free < MIN_FREE_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file; pass the checkpoint.pt of a run folder")
    try:
        # torch warns about a plain pickle's protocol before refusing it: the refusal is
        # the one line the user needs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # arbitrary bytes make the unpickler raise anything
        raise DataError(f"{path}: {_load_refusal(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a cnnlab checkpoint (no '{FORMAT}' marker)")
    _check_payload(payload, path)
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
        history=payload.get("history"),
        optimizer_state=payload.get("optimizer"),
        trainer_state=payload.get("trainer"),
        averaged_state_dict=payload.get("averaged_state_dict"),
        scaler_state=payload.get("scaler"),
        trained_on=payload.get("trained_on")
        if isinstance(payload.get("trained_on"), dict)
        else None,
        source=str(path),
    )


def _load_refusal(exc: BaseException) -> str:
    """Why torch.load refused the file: what it asked for, never advice to unpickle it."""
    text = str(exc)
    asked = re.search(r"GLOBAL ([\w.]+)", text)
    if asked:
        return (
            f"refused: it asks to load {asked.group(1)}, which a cnnlab checkpoint never holds; "
            "nothing in it was run (only tensors and plain values are read)"
        )
    if "central directory" in text or (isinstance(exc, OSError) and exc.errno == errno.EINVAL):
        # torch's zip reader on a file cut short: miniz's words, or a bare "Invalid argument"
        return (
            "not a readable cnnlab checkpoint (it is cut short or damaged: an interrupted copy "
            "or download?); copy it again, or pass the checkpoint.pt of a run folder"
        )
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "weights_only" not in ln]
    if isinstance(exc, (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError)):
        reason = (lines or [type(exc).__name__])[0][:200]
    else:  # a KeyError or IndexError from deep in the unpickler says nothing to a user
        reason = f"its bytes are not a torch checkpoint: {type(exc).__name__}"
    return f"not a readable cnnlab checkpoint ({reason}); pass the checkpoint.pt of a run folder"


_REQUIRED = {
    "model": dict, "classes": list, "input_shape": list, "normalization": dict,
    "state_dict": dict, "config": dict, "epoch": int, "step": int,
}  # fmt: skip


def _check_payload(payload: dict[str, Any], path: Path) -> None:
    """One line naming what is wrong, for a file that has the marker but not the content."""

    def bad(what: str) -> DataError:
        return DataError(f"{path}: {what}; the checkpoint is damaged or was edited")

    for key, kind in _REQUIRED.items():
        if not isinstance(payload.get(key), kind):
            raise bad(f"'{key}' is missing or not a {kind.__name__}")
    shape = payload["input_shape"]
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise bad(f"input_shape {shape} is not three positive sizes (C, H, W)")
    classes = payload["classes"]
    if not classes or not all(isinstance(c, str) for c in classes):
        raise bad("its class names are missing")
    norm = payload["normalization"]
    mean, std = norm.get("mean"), norm.get("std")
    channels = shape[0]
    if not (isinstance(mean, list) and isinstance(std, list)) or not (
        len(mean) == len(std) == channels
    ):
        raise bad(f"its normalisation does not have one mean and std per channel ({channels})")
    if (
        not all(isinstance(v, int | float) and math.isfinite(v) for v in mean + std)
        or min(std) <= 0
    ):
        raise bad(f"its normalisation is not finite with positive std (mean {mean}, std {std})")
    for key in ("state_dict", "averaged_state_dict"):
        weights = payload.get(key)
        if weights is None:
            continue
        for name, tensor in weights.items():
            if not isinstance(tensor, torch.Tensor):
                raise bad(f"{key} entry '{name}' is not a tensor")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise bad(f"weight '{name}' holds NaN or infinite values")
