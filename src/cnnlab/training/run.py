"""One way to train a run: `cnnlab train`, ``cnnlab.train()`` and every study executor
call :func:`train_run`, so a run's folder holds the same files whoever trained it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from cnnlab import faults, plots
from cnnlab.atomic import atomic_write_text
from cnnlab.config.identity import slugify
from cnnlab.config.schema import TrainConfig, config_dict
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import DataCache
from cnnlab.errors import RunFailed
from cnnlab.records import ARTIFACTS, Provenance, RunRecord, RunSummary
from cnnlab.training import loop
from cnnlab.training.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.training.reporting import Reporter


def default_run_folder(cfg: TrainConfig) -> Path:
    """Where a run goes without --out: ``runs/<model>-<dataset>-s<seed>``, folder-safe
    (``folder:/data/photos`` -> ``folder-data-photos``)."""
    return Path("runs") / slugify(f"{Path(cfg.model).stem}-{cfg.dataset}-s{cfg.seed}")


def finished_summary(
    cfg: TrainConfig, out_dir: Path, allow_device_change: bool = False
) -> RunSummary | None:
    """The summary of ``out_dir``'s run when it is this run (same settings, same kind of
    machine: else a one-line refusal) and finished with every file written; None when
    there is training or writing left to do."""
    from cnnlab.evaluation.precision import resolve_precision
    from cnnlab.training.resume import previous_checkpoint

    out_dir = Path(out_dir)
    precision = resolve_precision(cfg.precision, cfg.device)
    ckpt = previous_checkpoint(
        cfg, out_dir / ARTIFACTS["checkpoint"], True, precision, allow_device_change
    )
    files = [out_dir / ARTIFACTS[k] for k in ("summary", "metrics", "curves", "predictions")]
    if ckpt is None or not all(f.is_file() for f in files):
        return None
    try:
        summary = RunSummary.from_dict(json.loads(files[0].read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged: the resume rewrites it from the checkpoint
    stopped = bool((ckpt.trainer_state or {}).get("stopped_early"))
    done = ckpt.epoch >= cfg.epochs or stopped
    return summary if done and summary.epochs == ckpt.epoch else None


def start_from(cfg: TrainConfig, out_dir: Path, kept: Path) -> None:
    """Begin ``out_dir``'s run from ``kept``: the checkpoint a longer run of the same
    settings kept at this run's last epoch (``keep_checkpoints``), when the schedule makes
    this run exactly its start. Training it then only evaluates and writes its files. A
    run folder that already holds a checkpoint is left as it is, and without ``kept`` (the
    longer run failed before that epoch, or began before it kept checkpoints) the run
    trains from its first epoch."""
    target = Path(out_dir) / ARTIFACTS["checkpoint"]
    if target.exists() or not Path(kept).is_file():
        return
    ckpt = load_checkpoint(kept)
    if not cfg.shorter_runs_are_its_start or ckpt.epoch != cfg.epochs:
        raise RunFailed(
            f"{kept} is not the start of this run (epoch {ckpt.epoch}, not {cfg.epochs})"
        )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_checkpoint(replace(ckpt, config=config_dict(cfg)), target)


def train_run(
    cfg: TrainConfig,
    out_dir: Path,
    *,
    data: DatasetArrays | None = None,
    cache: DataCache | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    provenance: Provenance | None = None,
    allow_device_change: bool = False,
) -> RunRecord:
    """Train ``cfg`` into ``out_dir`` (config, metrics, summary, checkpoint, predictions),
    draw its curves, and return its record (``run_dir`` set). ``data``: the arrays to
    train on, else read through ``cache``. A run that fails (it diverged) leaves
    ``error.txt`` saying why. See :func:`cnnlab.training.loop.train`."""
    error = Path(out_dir) / ARTIFACTS["error"]
    try:
        record = loop.train(
            cfg, out_dir, data=data, resume=resume, reporter=reporter, cache=cache,
            provenance=provenance, allow_device_change=allow_device_change,
        )  # fmt: skip
    except RunFailed as exc:  # it trained and failed: its folder says so, not only config.json
        if Path(out_dir).is_dir():
            atomic_write_text(error, f"{exc}\n")
        raise
    error.unlink(missing_ok=True)  # from an earlier attempt that failed
    plots.plot_run_curves(
        record.history, out_dir / ARTIFACTS["curves"], title=f"{cfg.model} on {cfg.dataset}"
    )
    faults.reached("curves")
    record.run_dir = Path(out_dir)
    return record
