"""The executor protocol, and the in-process executor that every other one's workers use.

An executor drives a :class:`~cnnlab.study.run.events.RunFeed` of self-contained
:class:`PlannedRun`s (each its TrainConfig and its run folder), and everything a run
produces reaches the study as :class:`~cnnlab.study.run.events.RunEvents` (``start_run``,
``add_epoch``/``replace_epochs``, ``finish_run``/``fail_run``): the store writes them in
process, a remote worker forwards them to the driver that owns the database. So another
executor fits in without changes to the store or the report.

Each run resumes from its own ``checkpoint.pt`` when there is one: a run left
``running`` by a killed process, or retried after a failure, continues where its
last finished epoch left it and ends with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Protocol

import numpy as np

from cnnlab import faults
from cnnlab.atomic import atomic_write_text, remove_stale_temporaries
from cnnlab.config.identity import identity_hash, run_identity
from cnnlab.data.datasets import DataCache
from cnnlab.errors import CnnlabError, ConfigError, RunPruned, machine_refusal
from cnnlab.records import ARTIFACTS, EpochRow, Provenance, RunRecord
from cnnlab.study.plan.study_plan import PlannedRun
from cnnlab.study.run.events import JudgedEvents, ListFeed, RunEvents, RunFeed
from cnnlab.study.run.study_progress import QuietStudyProgress, StudyProgress
from cnnlab.study.store.database import Store
from cnnlab.training.reporting import Reporter


class Executor(Protocol):
    """Where a study's runs train: in this process, on Ray; the store, the report and the
    run ids are the same whichever trained them. A new executor is one module with these."""

    def check(self, runs: Sequence[PlannedRun]) -> None:
        """Raise a one-line CnnlabError now if the runs cannot start at all (a missing
        dataset, a model that cannot take its images), before any run starts."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """The executor started for the block (workers, a cluster connection): a command
        that trains twice (a search, then its confirmation) starts it once."""
        ...

    def run_feed(self, feed: RunFeed, store: Store, progress: StudyProgress | None = None) -> None:
        """Train what ``feed`` gives (each run resuming from its checkpoint where there is
        one), recording it in ``store`` (the driver is its only writer). A failing run is recorded as failed and the others go
        on; KeyboardInterrupt stops everything; the runner marks the runs interrupted."""
        ...

    def run_all(
        self, runs: Sequence[PlannedRun], store: Store, progress: StudyProgress | None = None
    ) -> None:
        """``run_feed`` over ``runs``, in the order this executor finishes them soonest."""
        ...


class StoreReporter:
    """Forwards every epoch to the store as it completes, and everything to ``inner``."""

    def __init__(self, store: RunEvents, run_id: str, inner: Reporter) -> None:
        self.store, self.run_id, self.inner = store, run_id, inner

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.inner.start_epoch(epoch, epochs, steps)

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        self.inner.step(done, loss, acc, images_per_s)

    def end_epoch(self, row: EpochRow) -> None:
        self.store.add_epoch(self.run_id, row)
        self.inner.end_epoch(row)

    def close(self) -> None:
        self.inner.close()


def run_provenance(run: PlannedRun) -> Provenance:
    """Where and with what a run is about to train (its ``device`` e.g. "cuda bf16
    channels_last (NVIDIA H100 80GB HBM3)")."""
    from cnnlab.evaluation.precision import resolve_precision
    from cnnlab.training.provenance import collect_provenance

    return collect_provenance(resolve_precision(run.config.precision, run.config.device))


def error_message(exc: BaseException) -> str:
    """One line for the store: a CnnlabError's own message, else the type and first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CnnlabError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def sync_checkpoint(run: PlannedRun, store: RunEvents) -> int:
    """Prepare ``run.run_dir`` for ``train(resume=True)``; return the epochs already done.

    The checkpoint is the truth about a run's progress: its history replaces the stored
    epoch rows (a kill between the checkpoint write and the database write loses no
    epoch), and no checkpoint means the run starts over (stale rows are dropped). A
    checkpoint whose settings differ only in location (the study folder, model files
    or data moved) gets the current paths, so the run resumes instead of failing.
    """
    from cnnlab.config.schema import config_dict
    from cnnlab.training.checkpoint import load_checkpoint, save_checkpoint

    path = run.run_dir / "checkpoint.pt"
    if not path.exists():
        store.replace_epochs(run.run_id, [])
        return 0
    ckpt = load_checkpoint(path)
    current = config_dict(run.config)
    if ckpt.config != current:
        if identity_hash(run_identity(ckpt.config, ckpt.model_spec)) != run.config_hash:
            raise ConfigError(
                f"{run.run_dir} holds a checkpoint of other settings; move that folder away "
                "to start this run afresh"
            )
        save_checkpoint(replace(ckpt, config=current), path)
    store.replace_epochs(run.run_id, [EpochRow.from_dict(r) for r in ckpt.history or []])
    return int(ckpt.epoch)


class InProcessExecutor:
    """Runs one run after another in this process, on the device each config names.

    Its runs share one :class:`DataCache`: every run of a study trains on the same arrays.
    """

    def __init__(self, allow_device_change: bool = False, threads: int | None = None) -> None:
        self.data = DataCache()
        self.threads = threads  # torch threads while it trains (None: torch's default)
        # Resume runs begun on another kind of device or precision (train.resume).
        self.allow_device_change = allow_device_change
        # (dataset, model identity) -> multiply-accumulates per image of the model built
        # on the data: a second check of the same runs (the CLI's, then run_study's)
        # builds nothing again.
        self.checked: dict[tuple[str, str], int] = {}
        self.train_images: dict[str, int] = {}  # run id -> images an epoch trains on
        self.model_key: dict[str, tuple[str, str]] = {}  # run id -> its key in checked

    def work(self, run: PlannedRun, epochs_done: int = 0) -> float:
        """A checked run's training still to do, in multiply-accumulates (0 if unchecked):
        what a pool of workers schedules by, longest first."""
        macs = self.checked.get(self.model_key.get(run.run_id, ("", "")), 0)
        epochs_left = max(run.config.epochs - epochs_done, 0)
        return float(macs) * self.train_images.get(run.run_id, 0) * epochs_left

    def check(self, runs: Sequence[PlannedRun]) -> None:
        from cnnlab.data.arrays import Split
        from cnnlab.evaluation.contract import shape_for_model
        from cnnlab.models.registry import build_model, preferred_input_size, resolve_model
        from cnnlab.models.summary import summarize

        checked = self.checked
        if any(run.config.tensorboard for run in runs):
            from cnnlab.training.tensorboard import require_tensorboard

            require_tensorboard()
        for run in runs:
            cfg = run.config
            data = self.data.dataset(cfg.dataset, cfg.data_dir)
            # What the stratified hold-out (data.loader.stratified_split) leaves to train on.
            counts = np.bincount(data.train.labels)
            n_train = len(data.train) - sum(round(int(c) * cfg.val_fraction) for c in counts if c)
            if cfg.drop_last and cfg.batch_size > n_train:
                raise ConfigError(
                    f"variant '{run.variant}': batch_size {cfg.batch_size} is larger than the "
                    f"{n_train} training images of {cfg.dataset}; lower batch_size or set "
                    "drop_last = false"
                )
            key = (cfg.dataset, str(run.identity["settings"]["model"]))
            self.train_images[run.run_id], self.model_key[run.run_id] = n_train, key
            if key in checked:
                continue
            try:
                spec = resolve_model(cfg.model, cfg.model_args)
                one = Split(data.test.images[:1], data.test.labels[:1])
                shape = shape_for_model(one, preferred_input_size(spec)).shape
                model = build_model(spec, shape, len(data.classes))
            except CnnlabError as exc:
                raise ConfigError(f"variant '{run.variant}': {exc}") from None
            checked[key] = summarize(model, shape).macs

    def session(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def run_all(
        self, runs: Sequence[PlannedRun], store: Store, progress: StudyProgress | None = None
    ) -> None:
        self.run_feed(ListFeed(runs), store, progress)  # in study order

    def run_feed(self, feed: RunFeed, store: Store, progress: StudyProgress | None = None) -> None:
        import torch

        progress = progress or QuietStudyProgress()
        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            while (run := feed.next_run()) is not None:
                events = JudgedEvents(store, feed) if feed.judges(run) else store
                self.run_one(run, events, progress)
                feed.ended(run)
        finally:
            torch.set_num_threads(before)

    def run_one(self, run: PlannedRun, store: RunEvents, progress: StudyProgress) -> bool:
        """Train one run into its folder, reporting to ``store``; True when it finished."""
        from cnnlab.training.run import start_from, train_run

        started = time.perf_counter()
        record: RunRecord | None = None
        error: str | None = None
        pruned: str | None = None  # why a search's pruner stopped it
        provenance: Provenance | None = None
        try:
            provenance = run_provenance(run)
        except Exception as exc:  # e.g. cuda requested on a machine without one
            error = error_message(exc)
        (run.run_dir / ARTIFACTS["error"]).unlink(missing_ok=True)  # from an earlier attempt
        remove_stale_temporaries(run.run_dir)  # left by a kill inside a write; we hold the lock
        store.start_run(run.run_id, "" if provenance is None else provenance.device, provenance)
        reporter = StoreReporter(
            store, run.run_id, progress.run_started(run, store.epochs_done(run.run_id))
        )
        if error is None:
            try:
                if run.start_from is not None:  # nested epochs: a longer run's checkpoint
                    start_from(run.config, run.run_dir, run.start_from)
                sync_checkpoint(run, store)
                record = train_run(
                    run.config,
                    run.run_dir,
                    resume=True,
                    reporter=reporter,
                    cache=self.data,
                    provenance=provenance,
                    allow_device_change=self.allow_device_change,
                )
            except RunPruned as exc:
                pruned = error = str(exc)
            except Exception as exc:  # a failed run must not stop the study
                if (refusal := machine_refusal(exc)) is not None:
                    raise refusal from exc  # a full disk stops the study: the run resumes
                error = error_message(exc)
                if not isinstance(exc, CnnlabError):
                    run.run_dir.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(run.run_dir / ARTIFACTS["error"], traceback.format_exc())
        artifacts = {
            kind: run.run_dir / name
            for kind, name in ARTIFACTS.items()
            if (run.run_dir / name).exists()
        }
        if error is None:
            assert record is not None
            store.finish_run(run.run_id, record.summary, record.history, artifacts)
            faults.reached("finish")
        elif pruned is not None:
            store.prune_run(run.run_id, pruned)
        else:
            store.fail_run(run.run_id, error, artifacts)
        progress.run_ended(
            run, None if record is None else record.summary, error, time.perf_counter() - started
        )
        return error is None
