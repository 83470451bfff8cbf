"""One training run: epochs of optimisation and evaluation, with its run folder.

A run folder holds ``config.json`` (the resolved settings), ``metrics.csv``
(one row per epoch), ``summary.json`` (final and best metrics, size, time),
``checkpoint.pt`` (rewritten atomically every epoch) and ``test_predictions.npz``.
A run resumed from its checkpoint ends with the same numbers as an uninterrupted one.
Read it as torchvision's references: :func:`train` is ``main``, then
:func:`train_one_epoch`, :func:`evaluate_val` and :func:`evaluate_test`; what a step uses is a
:class:`~cnnlab.training.trainer.Trainer`. The trainer draws nothing:
:func:`cnnlab.training.run.train_run` (what every caller uses) adds the curves.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch

from cnnlab import faults, heartbeat
from cnnlab.atomic import atomic_path, atomic_write_text
from cnnlab.config.identity import RUN_ID_LENGTH, identity_hash, run_identity
from cnnlab.config.schema import TrainConfig, config_dict
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import DataCache
from cnnlab.errors import RunFailed
from cnnlab.evaluation.metrics import accuracy_by_domain, loss_and_accuracy, predict_logits
from cnnlab.evaluation.precision import configure_backends, resolve_precision
from cnnlab.evaluation.saved import load_predictions, save_predictions
from cnnlab.models.registry import preferred_input_size, resolve_model
from cnnlab.records import (
    ARTIFACTS,
    EpochRow,
    Provenance,
    RunRecord,
    RunSummary,
    kept_checkpoint,
    metrics_csv_text,
    summarize_history,
    write_run_files,
)
from cnnlab.training.checkpoint import save_checkpoint
from cnnlab.training.prepare import make_loaders
from cnnlab.training.provenance import collect_provenance
from cnnlab.training.recipe import lr_factor, set_lr
from cnnlab.training.reporting import QuietReporter, Reporter
from cnnlab.training.resume import no_deterministic_kernel, previous_checkpoint
from cnnlab.training.tensorboard import TensorBoardReporter, require_tensorboard
from cnnlab.training.trainer import RunState, Trainer, build_trainer

STEP_REPORT_EVERY = 20  # steps between progress-bar refreshes (each costs a device sync)


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite."""


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
    out_dir = Path(out_dir)
    ckpt_path = out_dir / ARTIFACTS["checkpoint"]
    precision = resolve_precision(cfg.precision, cfg.device)
    previous = previous_checkpoint(cfg, ckpt_path, resume, precision, allow_device_change)
    configure_backends(precision, cfg.deterministic)
    if cfg.tensorboard:
        require_tensorboard()
    spec = resolve_model(cfg.model, cfg.model_args)
    provenance = provenance or collect_provenance(precision)
    if data is None:
        data = (cache or DataCache()).dataset(cfg.dataset_ref, cfg.data_dir)
    loaders = make_loaders(cfg, data, precision, preferred_input_size(spec), cache)
    trainer = build_trainer(cfg, spec, loaders, precision)
    state = RunState() if previous is None else trainer.restore(previous)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / ARTIFACTS["config"], json.dumps(config_dict(cfg), indent=2) + "\n")
    reporter = reporter or QuietReporter()
    board = TensorBoardReporter(reporter, out_dir, state.step) if cfg.tensorboard else None
    reporter = board or reporter
    test_logits = None
    try:
        while state.epoch < cfg.epochs and not state.stopped_early:
            test_logits = run_epoch(trainer, state, reporter, out_dir)
    except RuntimeError as exc:
        if cfg.deterministic and "deterministic implementation" in str(exc):
            raise RunFailed(no_deterministic_kernel(str(exc))) from None
        raise
    finally:
        reporter.close()

    return _finish(trainer, state, out_dir, test_logits, board, provenance)


def _finish(
    trainer: Trainer,
    state: RunState,
    out_dir: Path,
    test_logits: torch.Tensor | None,
    board: TensorBoardReporter | None,
    provenance: Provenance,
) -> RunRecord:
    """The run's predictions, summary and files, rewritten from its state whatever point a
    kill hit; ``test_logits``: the last epoch's, when it was trained just now."""
    cfg = trainer.cfg
    if test_logits is None and _predictions_stale(out_dir, state.epoch):
        # Resumed with no epoch left to train, after a kill between the final checkpoint
        # and the predictions: predict again with the checkpoint's weights.
        test_logits = evaluate_test(trainer, EpochRow(epoch=state.epoch))
    if test_logits is not None:
        save_predictions(out_dir, test_logits, trainer.loaders.test.labels, state.epoch)
        faults.reached("predictions")
    # Every file the checkpoint implies is rewritten from it, whatever point a kill hit.
    identity = run_identity(config_dict(cfg), trainer.spec.model_dump(mode="json"))
    summary = _summary(trainer, state)
    summary.identity, summary.provenance = identity, provenance
    summary.run_id = identity_hash(identity)[:RUN_ID_LENGTH]
    if board is not None and test_logits is not None:  # epochs were trained just now
        board.finish(summary, identity)
    record = RunRecord(summary, state.history)
    write_run_files(out_dir, record)
    faults.reached("summary")
    return record


def run_epoch(
    trainer: Trainer, state: RunState, reporter: Reporter, out_dir: Path
) -> torch.Tensor | None:
    """Train and evaluate the next epoch, then checkpoint it; its test logits (None when
    the test split waits for the end: ``evaluate = "end"``)."""
    cfg = trainer.cfg
    epoch = state.epoch + 1
    torch.manual_seed(run_seed(cfg.seed, epoch))
    trainer.loaders.train.set_epoch(epoch)
    reporter.start_epoch(epoch, cfg.epochs, epoch_steps(trainer))
    started = time.perf_counter()
    train_loss, train_acc, images = train_one_epoch(trainer, state, reporter)
    seconds = time.perf_counter() - started
    state.train_seconds += seconds
    eval_started = time.perf_counter()
    heartbeat.doing(f"{cfg.model} seed {cfg.seed}: evaluating epoch {epoch}")
    row = evaluate_val(trainer)
    _update_early_stopping(cfg, state, row)
    if cfg.max_steps is not None and state.step >= cfg.max_steps:
        state.stopped_early = True  # the step limit ends the run as early stopping does
    test_logits = None
    if _tests_epoch(cfg, state, epoch):
        test_logits = evaluate_test(trainer, row)
    state.eval_seconds += time.perf_counter() - eval_started
    row.epoch = epoch
    row.lr = trainer.optimizer.param_groups[0]["lr"]
    row.train_loss, row.train_acc = train_loss, train_acc
    row.images_per_s, row.epoch_seconds = images / seconds, seconds
    row.wall_seconds = ((state.history[-1].wall_seconds or 0.0) if state.history else 0.0) + (
        time.perf_counter() - started
    )
    state.history.append(row)
    state.epoch = epoch
    faults.reached("evaluated")
    save_checkpoint(trainer.checkpoint(state), out_dir / ARTIFACTS["checkpoint"])
    faults.reached("checkpoint")
    if epoch in cfg.keep_checkpoints:  # a shorter run of the same settings is read from it
        with atomic_path(out_dir / kept_checkpoint(epoch)) as kept:
            shutil.copyfile(out_dir / ARTIFACTS["checkpoint"], kept)
    atomic_write_text(out_dir / ARTIFACTS["metrics"], metrics_csv_text(state.history))
    faults.reached("metrics")
    reporter.end_epoch(row)
    faults.reached("store-epoch")
    return test_logits


def epoch_steps(trainer: Trainer) -> int:
    """The steps of an epoch: the loader's batches, or ``limit_batches`` of them (a quick
    look, whose schedule counts these steps only)."""
    limit = trainer.cfg.limit_batches
    return trainer.steps_per_epoch if limit is None else min(trainer.steps_per_epoch, limit)


def train_one_epoch(
    trainer: Trainer, state: RunState, reporter: Reporter
) -> tuple[float, float, int]:
    """One pass over the training batches; mean loss, accuracy and images seen."""
    cfg, device = trainer.cfg, trainer.precision.device
    trainer.model.train()
    steps = epoch_steps(trainer)
    total_steps = steps * cfg.epochs
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    started = time.perf_counter()
    for i, (x, y) in enumerate(trainer.loaders.train, start=1):
        if (cfg.max_steps is not None and state.step >= cfg.max_steps) or i > steps:
            break  # the run's step limit, or the epoch's batch limit
        factor = lr_factor(cfg.schedule, state.step, steps, total_steps)
        set_lr(trainer.optimizer, cfg.optimizer.lr, factor)
        step_started = time.perf_counter()
        logits, loss = trainer.step(x, y)
        if trainer.average is not None:
            trainer.average.update(state.step)
        state.step_seconds += time.perf_counter() - step_started
        state.step += 1
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if i % STEP_REPORT_EVERY == 0 or i == steps:
            mean_loss = loss_sum.item() / seen
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(
                    f"training diverged at epoch {state.epoch + 1} step {i}: loss is {mean_loss}; "
                    "lower the learning rate or add gradient clipping"
                )
            speed = seen / (time.perf_counter() - started)
            reporter.step(i, mean_loss, correct.item() / seen, speed)
            heartbeat.doing(
                f"{cfg.model} seed {cfg.seed}: epoch {state.epoch + 1}/{cfg.epochs}, "
                f"step {i}/{steps}, train loss {mean_loss:.4f}"
            )
    return loss_sum.item() / seen, correct.item() / seen, seen


def _tests_epoch(cfg: TrainConfig, state: RunState, epoch: int) -> bool:
    """Whether ``epoch`` is evaluated on the test split: every one, or (``evaluate = "end"``)
    the last, one that ends the run early, and one whose checkpoint a shorter run is read
    from (it ends that run)."""
    if cfg.evaluate == "each-epoch" or epoch >= cfg.epochs or state.stopped_early:
        return True
    return epoch in cfg.keep_checkpoints


def evaluate_val(trainer: Trainer) -> EpochRow:
    """An epoch's row with its validation figures, when the run holds a validation split."""
    row = EpochRow(epoch=0)
    if trainer.loaders.val is not None:
        row.val_loss, row.val_acc = loss_and_accuracy(
            *predict_logits(
                trainer.evaluated, trainer.loaders.val, trainer.precision, trainer.cfg.tta
            )
        )
    return row


def evaluate_test(trainer: Trainer, row: EpochRow) -> torch.Tensor:
    """Fill ``row``'s test figures in; the test logits."""
    loaders = trainer.loaders
    logits, labels = predict_logits(
        trainer.evaluated, loaders.test, trainer.precision, trainer.cfg.tta
    )
    row.test_loss, row.test_acc = loss_and_accuracy(logits, labels)
    if loaders.test_domains is not None:
        row.test_acc_by_domain = accuracy_by_domain(
            logits, labels, loaders.test_domains, loaders.domain_names
        )
    return logits


def _predictions_stale(out_dir: Path, epoch: int) -> bool:
    saved = load_predictions(out_dir)
    return saved is None or saved.epoch != epoch


def _update_early_stopping(cfg: TrainConfig, state: RunState, row: EpochRow) -> None:
    if cfg.early_stopping is None or row.val_loss is None:
        return
    if row.val_loss < state.best_val_loss:
        state.best_val_loss = row.val_loss
        state.bad_epochs = 0
    else:
        state.bad_epochs += 1
        state.stopped_early = state.bad_epochs >= cfg.early_stopping


def _summary(trainer: Trainer, state: RunState) -> RunSummary:
    cfg, loaders = trainer.cfg, trainer.loaders
    return summarize_history(
        state.history,
        model=cfg.model,
        dataset=cfg.dataset,
        seed=cfg.seed,
        stopped_early=state.stopped_early,
        params=trainer.size.params,
        macs_per_image=trainer.size.macs,
        input_shape=list(loaders.input_shape),
        classes=loaders.classes,
        precision=trainer.precision.label,
        train_seconds=state.train_seconds,
        step_seconds=state.step_seconds,
        eval_seconds=state.eval_seconds,
    )
