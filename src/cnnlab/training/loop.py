"""One training run: epochs of optimisation and evaluation, with its run folder.

A run folder holds ``config.json`` (the resolved settings), ``metrics.csv``
(one row per epoch), ``summary.json`` (final and best metrics, size, time),
``checkpoint.pt`` (rewritten atomically every epoch) and ``test_predictions.npz``.
A run resumed from its checkpoint ends with the same numbers as an uninterrupted one.
The trainer draws nothing: its caller plots the returned record (``curves.png``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from cnnlab import faults, heartbeat
from cnnlab.atomic import atomic_write_text
from cnnlab.config.identity import RUN_ID_LENGTH, identity_hash, run_identity
from cnnlab.config.schema import TrainConfig, config_dict
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.registry import DataCache
from cnnlab.errors import RunFailed
from cnnlab.evaluation.metrics import accuracy_by_domain, loss_and_accuracy, predict_logits
from cnnlab.evaluation.precision import (
    Precision,
    configure_backends,
    precision_record,
    resolve_precision,
)
from cnnlab.evaluation.saved import load_predictions, save_predictions
from cnnlab.models.layers import data_fitted_layers
from cnnlab.models.registry import (
    Summary,
    build_model,
    preferred_input_size,
    resolve_model,
    summarize,
)
from cnnlab.records import (
    ARTIFACTS,
    EpochRow,
    Provenance,
    RunRecord,
    RunSummary,
    metrics_csv_text,
    summarize_history,
    write_run_files,
)
from cnnlab.training.averaging import WeightAverage
from cnnlab.training.checkpoint import Checkpoint, save_checkpoint
from cnnlab.training.prepare import Loaders, make_loaders
from cnnlab.training.progress import QuietReporter, Reporter
from cnnlab.training.provenance import collect_provenance
from cnnlab.training.recipe import lr_factor, make_loss, make_optimizer, set_lr
from cnnlab.training.resume import no_deterministic_kernel, previous_checkpoint
from cnnlab.training.tensorboard import TensorBoardReporter, require_tensorboard

# Training images a patch-whitening layer is fitted to: 5,000 CIFAR images give 4.8 M
# patches, plenty for a 12 x 12 covariance, in well under a second.
WHITENING_SAMPLE = 5000
STEP_REPORT_EVERY = 20  # steps between progress-bar refreshes (each costs a device sync)


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite."""


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


def run_seed(seed: int, epoch: int) -> int:
    """Seed of the global RNG (dropout) for an epoch, so a resumed run draws the same masks."""
    return (seed * 1_000_003 + epoch * 7919 + 1) % (2**63)


def train(
    cfg: TrainConfig,
    out_dir: Path,
    data: DatasetArrays | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    cache: DataCache | None = None,
    provenance: Provenance | None = None,
    allow_device_change: bool = False,
) -> RunRecord:
    """Train per ``cfg`` into ``out_dir``; return its epoch rows and summary (also written
    to metrics.csv and summary.json). ``provenance``: as the caller recorded it when the
    run started (taken here otherwise). ``allow_device_change``: resume a run begun on
    another kind of device or precision (see :mod:`cnnlab.training.resume`)."""
    reporter = reporter or QuietReporter()
    out_dir = Path(out_dir)
    ckpt_path = out_dir / ARTIFACTS["checkpoint"]
    precision = resolve_precision(cfg.precision, cfg.device)
    previous = previous_checkpoint(cfg, ckpt_path, resume, precision, allow_device_change)
    configure_backends(precision, cfg.deterministic)
    if cfg.tensorboard:
        require_tensorboard()
    spec = resolve_model(cfg.model, cfg.model_args)
    provenance = provenance or collect_provenance(precision)
    identity = run_identity(config_dict(cfg), spec.model_dump(mode="json"))
    if data is None:
        data = (cache or DataCache()).dataset(cfg.dataset_ref, cfg.data_dir)
    loaders = make_loaders(cfg, data, precision, preferred_input_size(spec), cache)

    torch.manual_seed(cfg.seed)
    model = build_model(spec, loaders.input_shape, len(loaders.classes))
    for layer in data_fitted_layers(model):  # a resumed run then loads the fitted filters
        layer.fit(loaders.train.head(WHITENING_SAMPLE))
    summary_info = summarize(model, loaders.input_shape)
    model = model.to(precision.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg.optimizer)
    average = None if cfg.ema_decay is None else WeightAverage(model, cfg.ema_decay)
    # Compiling costs a warm-up in the first steps (counted in epoch 1's time); evaluation
    # stays eager so its other batch shapes trigger no recompilation.
    compiled = cast(nn.Module, torch.compile(model)) if cfg.compile else model
    state = RunState()
    if previous is not None:
        model.load_state_dict(previous.state_dict)
        if average is not None and previous.averaged_state_dict is not None:
            average.load_state_dict(previous.averaged_state_dict)
        if previous.optimizer_state is not None:
            optimizer.load_state_dict(previous.optimizer_state)
        state = RunState(
            epoch=previous.epoch,
            step=previous.step,
            history=[EpochRow.from_dict(r) for r in previous.history or []],
        )
        for key, value in (previous.trainer_state or {}).items():
            setattr(state, key, value)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / ARTIFACTS["config"], json.dumps(config_dict(cfg), indent=2) + "\n")

    def checkpoint() -> Checkpoint:
        return Checkpoint(
            model_spec=spec.model_dump(mode="json"),
            classes=loaders.classes,
            input_shape=loaders.input_shape,
            normalization=loaders.normalization,
            state_dict=model.state_dict(),
            config=config_dict(cfg),
            epoch=state.epoch,
            step=state.step,
            history=[r.to_dict() for r in state.history],
            optimizer_state=optimizer.state_dict(),
            trainer_state={
                "best_val_loss": state.best_val_loss,
                "bad_epochs": state.bad_epochs,
                "stopped_early": state.stopped_early,
                "train_seconds": state.train_seconds,
                "step_seconds": state.step_seconds,
                "eval_seconds": state.eval_seconds,
            },
            averaged_state_dict=None if average is None else average.state_dict(),
            scaler_state=None if scaler is None else scaler.state_dict(),
            trained_on=precision_record(precision),
        )

    board = TensorBoardReporter(reporter, out_dir, state.step) if cfg.tensorboard else None
    reporter = board or reporter
    loss_fn = make_loss(cfg.label_smoothing)
    scaler = torch.amp.GradScaler(precision.device.type) if precision.grad_scaling else None
    if scaler is not None and previous is not None and previous.scaler_state:
        scaler.load_state_dict(previous.scaler_state)
    steps_per_epoch = len(loaders.train)
    total_steps = steps_per_epoch * cfg.epochs
    test_logits = None
    try:
        while state.epoch < cfg.epochs and not state.stopped_early:
            epoch = state.epoch + 1
            torch.manual_seed(run_seed(cfg.seed, epoch))
            loaders.train.set_epoch(epoch)
            reporter.start_epoch(epoch, cfg.epochs, steps_per_epoch)
            started = time.perf_counter()
            train_loss, train_acc, images = _train_epoch(
                model,
                loaders,
                optimizer,
                loss_fn,
                precision,
                scaler,
                cfg,
                state,
                total_steps,
                reporter,
                average,
                compiled,
            )
            seconds = time.perf_counter() - started
            state.train_seconds += seconds
            eval_started = time.perf_counter()
            heartbeat.doing(f"{cfg.model} seed {cfg.seed}: evaluating epoch {epoch}")
            row, test_logits = _evaluate_epoch(
                model if average is None else average.model, loaders, precision, cfg.tta
            )
            state.eval_seconds += time.perf_counter() - eval_started
            row.epoch = epoch
            row.lr = optimizer.param_groups[0]["lr"]
            row.train_loss, row.train_acc = train_loss, train_acc
            row.images_per_s, row.epoch_seconds = images / seconds, seconds
            row.wall_seconds = (
                (state.history[-1].wall_seconds or 0.0) if state.history else 0.0
            ) + (time.perf_counter() - started)
            state.history.append(row)
            state.epoch = epoch
            _update_early_stopping(cfg, state, row)
            faults.reached("evaluated")
            save_checkpoint(checkpoint(), ckpt_path)
            faults.reached("checkpoint")
            atomic_write_text(out_dir / ARTIFACTS["metrics"], metrics_csv_text(state.history))
            faults.reached("metrics")
            reporter.end_epoch(row)
            faults.reached("store-epoch")
    except RuntimeError as exc:
        if cfg.deterministic and "deterministic implementation" in str(exc):
            raise RunFailed(no_deterministic_kernel(str(exc))) from None
        raise
    finally:
        reporter.close()

    if test_logits is None and _predictions_stale(out_dir, state.epoch):
        # Resumed with no epoch left to train, after a kill between the final checkpoint
        # and the predictions: predict again with the checkpoint's weights.
        _, test_logits = _evaluate_epoch(
            model if average is None else average.model, loaders, precision, cfg.tta
        )
    if test_logits is not None:
        save_predictions(out_dir, test_logits, loaders.test.labels, state.epoch)
        faults.reached("predictions")
    # Every file the checkpoint implies is rewritten from it, whatever point a kill hit.
    summary = _summary(cfg, state, summary_info, precision, loaders)
    summary.identity, summary.provenance = identity, provenance
    summary.run_id = identity_hash(identity)[:RUN_ID_LENGTH]
    if board is not None and test_logits is not None:  # epochs were trained just now
        board.finish(summary, identity)
    record = RunRecord(summary, state.history)
    write_run_files(out_dir, record)
    faults.reached("summary")
    return record


def _predictions_stale(out_dir: Path, epoch: int) -> bool:
    saved = load_predictions(out_dir)
    return saved is None or saved.epoch != epoch


def _train_epoch(
    model: nn.Module,
    loaders: Loaders,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    precision: Precision,
    scaler: torch.amp.GradScaler | None,
    cfg: TrainConfig,
    state: RunState,
    total_steps: int,
    reporter: Reporter,
    average: WeightAverage | None = None,
    forward: nn.Module | None = None,
) -> tuple[float, float, int]:
    """One epoch; ``forward`` is the model as called for training (compiled or not)."""
    model.train()
    forward = forward or model
    steps_per_epoch = len(loaders.train)
    loss_sum = torch.zeros((), device=precision.device)
    correct = torch.zeros((), device=precision.device, dtype=torch.long)
    seen = 0
    started = time.perf_counter()
    for i, (x, y) in enumerate(loaders.train, start=1):
        set_lr(
            optimizer,
            cfg.optimizer.lr,
            lr_factor(cfg.schedule, state.step, steps_per_epoch, total_steps),
        )
        step_started = time.perf_counter()
        if forward is not model and not cfg.drop_last:
            # The short last batch would otherwise compile the model a second time.
            torch._dynamo.maybe_mark_dynamic(x, 0)
        with precision.autocast():
            logits = forward(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
        if average is not None:
            average.update(state.step)
        state.step_seconds += time.perf_counter() - step_started
        state.step += 1
        n = len(y)
        loss_sum += loss.detach() * n
        correct += (logits.detach().argmax(1) == y).sum()
        seen += n
        if i % STEP_REPORT_EVERY == 0 or i == steps_per_epoch:
            mean_loss = loss_sum.item() / seen
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(
                    f"training diverged at epoch {state.epoch + 1} step {i}: loss is {mean_loss}; "
                    "lower the learning rate or add gradient clipping"
                )
            reporter.step(
                i, mean_loss, correct.item() / seen, seen / (time.perf_counter() - started)
            )
            heartbeat.doing(
                f"{cfg.model} seed {cfg.seed}: epoch {state.epoch + 1}/{cfg.epochs}, "
                f"step {i}/{steps_per_epoch}, train loss {mean_loss:.4f}"
            )
    return loss_sum.item() / seen, correct.item() / seen, seen


def _evaluate_epoch(
    model: nn.Module, loaders: Loaders, precision: Precision, tta: str
) -> tuple[EpochRow, torch.Tensor]:
    """The epoch's val/test figures (the caller fills in the rest), and the test logits."""
    row = EpochRow(epoch=0)
    if loaders.val is not None:
        row.val_loss, row.val_acc = loss_and_accuracy(
            *predict_logits(model, loaders.val, precision, tta)
        )
    logits, labels = predict_logits(model, loaders.test, precision, tta)
    row.test_loss, row.test_acc = loss_and_accuracy(logits, labels)
    if loaders.test_domains is not None:
        row.test_acc_by_domain = accuracy_by_domain(
            logits, labels, loaders.test_domains, loaders.domain_names
        )
    return row, logits


def _update_early_stopping(cfg: TrainConfig, state: RunState, row: EpochRow) -> None:
    if cfg.early_stopping is None or row.val_loss is None:
        return
    if row.val_loss < state.best_val_loss:
        state.best_val_loss = row.val_loss
        state.bad_epochs = 0
    else:
        state.bad_epochs += 1
        state.stopped_early = state.bad_epochs >= cfg.early_stopping


def _summary(
    cfg: TrainConfig, state: RunState, info: Summary, precision: Precision, loaders: Loaders
) -> RunSummary:
    return summarize_history(
        state.history,
        model=cfg.model,
        dataset=cfg.dataset,
        seed=cfg.seed,
        stopped_early=state.stopped_early,
        params=info.params,
        macs_per_image=info.macs,
        input_shape=list(loaders.input_shape),
        classes=loaders.classes,
        precision=precision.label,
        train_seconds=state.train_seconds,
        step_seconds=state.step_seconds,
        eval_seconds=state.eval_seconds,
    )
