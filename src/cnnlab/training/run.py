"""One way to train a run: `cnnlab train`, ``cnnlab.train()`` and every study executor
call :func:`train_run`, so a run's folder holds the same files whoever trained it."""

from __future__ import annotations

from pathlib import Path

from cnnlab import faults, plots
from cnnlab.atomic import atomic_write_text
from cnnlab.config.identity import slugify
from cnnlab.config.schema import TrainConfig
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import DataCache
from cnnlab.errors import RunFailed
from cnnlab.records import ARTIFACTS, Provenance, RunRecord
from cnnlab.training import loop
from cnnlab.training.reporting import Reporter


def default_run_folder(cfg: TrainConfig) -> Path:
    """Where a run goes without --out: ``runs/<model>-<dataset>-s<seed>``, folder-safe
    (``folder:/data/photos`` -> ``folder-data-photos``)."""
    return Path("runs") / slugify(f"{Path(cfg.model).stem}-{cfg.dataset}-s{cfg.seed}")


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
