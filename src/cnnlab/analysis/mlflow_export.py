"""A study's finished runs as MLflow runs (``cnnlab mlflow STUDY_DIR --tracking-uri URI``).

Each cnnlab run becomes one MLflow run in an experiment named after the study: its
settings as params (dotted keys, as the report shows them), every epoch's metrics with
the epoch as step, its summary figures, tags for study / variant / seed / run id /
provenance, and its curves, summary, metrics and settings files as artifacts.

Exporting again adds nothing twice: runs are matched by the ``cnnlab.run_id`` tag. A run
is marked complete only after everything of it is logged, so an export killed half-way
leaves a run marked incomplete, which the next export deletes and sends again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cnnlab.config.identity import flatten, slugify
from cnnlab.errors import CnnlabError
from cnnlab.records import ARTIFACTS, EPOCH_COLUMNS
from cnnlab.study.store.results import RunResult, StudyResults

INSTALL_HINT = "pip install -e '.[mlflow]' (or pip install mlflow)"
RUN_ID_TAG, STATE_TAG = "cnnlab.run_id", "cnnlab.export"
SUMMARY_METRICS = (
    "best_test_acc_optimistic", "params", "macs_per_image", "train_seconds", "step_seconds",
    "eval_seconds", "wall_seconds", "images_per_s",
)  # fmt: skip
EXPORTED_FILES = ("curves", "summary", "metrics", "config")
# MLflow takes at most 1000 metrics and 100 params and 100 tags per log_batch.
METRICS_PER_BATCH, KEYS_PER_BATCH = 900, 90


@dataclass
class Exported:
    experiment: str
    experiment_id: str
    added: list[str] = field(default_factory=list)  # cnnlab run ids sent now
    present: list[str] = field(default_factory=list)  # already there, complete
    redone: list[str] = field(default_factory=list)  # incomplete before, sent again
    not_done: list[str] = field(default_factory=list)  # failed, interrupted, pending


def import_mlflow() -> Any:
    # MLflow reports usage home by default (since 3.2): nothing leaves this machine.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    try:
        import mlflow
    except ImportError:
        raise CnnlabError(f"cnnlab mlflow needs the mlflow package: {INSTALL_HINT}") from None
    # Its INFO lines ("Creating initial MLflow database tables...") are not ours to print.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Beside the database for a local ``sqlite:///`` store (MLflow's own default is
    ./mlruns in whatever folder the command ran from); the server's choice otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().absolute()
    return (database.parent / "mlartifacts" / slugify(experiment)).as_uri()


def check_store(tracking_uri: str) -> None:
    """A store MLflow cannot open, said in one line now: MLflow itself retries a SQLite
    store it cannot open for minutes and an unreachable server for longer."""
    where = f"MLflow store {tracking_uri}"
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=3).close()
        except OSError as exc:
            raise CnnlabError(f"{where}: cannot reach the server ({exc.strerror or exc}); "
                              "start it (mlflow server) or fix --tracking-uri") from None  # fmt: skip
        return
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().absolute()
        _writable_folder(database.parent, where)
        try:
            with contextlib.closing(sqlite3.connect(database, timeout=5)) as conn:
                conn.execute("BEGIN IMMEDIATE")  # a write lock: refused where writes are
                conn.rollback()
        except sqlite3.Error as exc:
            raise CnnlabError(f"{where}: cannot write {database} ({exc}); choose a file you "
                              "can write, e.g. sqlite:///mlflow.db") from None  # fmt: skip
    elif parsed.scheme in ("", "file"):
        _writable_folder(Path(parsed.path if parsed.scheme else tracking_uri).expanduser(), where)


def _writable_folder(folder: Path, where: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CnnlabError(f"{where}: cannot write in {folder} ({exc.strerror or exc}); "
                          "choose a folder you can write") from None  # fmt: skip


def export_study(
    results: StudyResults, tracking_uri: str, experiment: str | None = None
) -> Exported:
    import_mlflow()
    check_store(tracking_uri)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = experiment or results.name
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(name)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(name, default_artifact_location(tracking_uri, name))
        )
        outcome = Exported(name, experiment_id)
        existing = _existing(client, experiment_id)
        for run in results.runs:
            if run.status != "done" or run.summary is None:
                outcome.not_done.append(run.run_id)
                continue
            state = existing.get(run.run_id)
            if state is not None and state[1] == "complete":
                outcome.present.append(run.run_id)
                continue
            if state is not None:
                client.delete_run(state[0])
                outcome.redone.append(run.run_id)
            else:
                outcome.added.append(run.run_id)
            _send(client, experiment_id, results, run)
    except MlflowException as exc:
        # MLflow puts its file store's deprecation notice before the reason: skip it.
        lines = [line for line in str(exc).strip().splitlines() if "maintenance mode" not in line]
        first = (lines or [type(exc).__name__])[0][:300]
        raise CnnlabError(f"MLflow at {tracking_uri}: {first}") from None
    return outcome


def _existing(client: Any, experiment_id: str) -> dict[str, tuple[str, str]]:
    """cnnlab run id -> (MLflow run id, export state) of the runs already there."""
    out: dict[str, tuple[str, str]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for r in page:
            ours = r.data.tags.get(RUN_ID_TAG)
            if ours:
                out[ours] = (r.info.run_id, r.data.tags.get(STATE_TAG, ""))
        token = page.token
        if not token:
            return out


def params_of(run: RunResult) -> dict[str, str]:
    settings = run.settings if run.settings is not None else dict(run.config)
    return {k: str(v) for k, v in flatten(settings).items()}


def tags_of(results: StudyResults, run: RunResult) -> dict[str, str]:
    tags = {
        "cnnlab.study": results.name,
        "cnnlab.variant": run.variant,
        "cnnlab.seed": str(run.seed),
        "cnnlab.dataset": results.dataset,
        "cnnlab.run_dir": str(run.run_dir),
    }
    if run.provenance is not None:
        for key, value in run.provenance.to_dict().items():
            if value not in (None, ""):
                tags[f"cnnlab.provenance.{key}"] = str(value)
    return tags


def _send(client: Any, experiment_id: str, results: StudyResults, run: RunResult) -> None:
    from mlflow.entities import Metric, Param, RunTag

    started = int(1000 * (run.started_at or time.time()))
    created = client.create_run(
        experiment_id,
        start_time=started,
        tags={RUN_ID_TAG: run.run_id, STATE_TAG: "incomplete"},
        run_name=f"{run.variant} s{run.seed}",
    )
    mlflow_id = created.info.run_id
    metrics = []
    for row in run.history:
        at = started + int(1000 * (row.wall_seconds or 0.0))
        for column in EPOCH_COLUMNS[1:]:
            value = row.get(column)
            if value is not None:
                metrics.append(Metric(column, float(value), at, row.epoch))
        for domain, acc in (row.test_acc_by_domain or {}).items():
            metrics.append(Metric(f"test_acc.{domain}", float(acc), at, row.epoch))
    assert run.summary is not None
    summary = run.summary.to_dict()
    last = run.history[-1].epoch if run.history else 0
    for key in SUMMARY_METRICS:
        if isinstance(summary.get(key), int | float):
            metrics.append(Metric(f"summary.{key}", float(summary[key]), started, last))
    params = [Param(k, v) for k, v in params_of(run).items()]
    tags = [RunTag(k, v) for k, v in tags_of(results, run).items()]
    for i in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(mlflow_id, metrics=metrics[i : i + METRICS_PER_BATCH])
    for i in range(0, max(len(params), len(tags)), KEYS_PER_BATCH):
        j = i + KEYS_PER_BATCH
        client.log_batch(mlflow_id, params=params[i:j], tags=tags[i:j])
    for kind in EXPORTED_FILES:
        path = run.run_dir / ARTIFACTS[kind]
        if path.is_file():
            client.log_artifact(mlflow_id, str(path))
    client.set_tag(mlflow_id, STATE_TAG, "complete")
    ended = int(1000 * run.ended_at) if run.ended_at else None
    client.set_terminated(mlflow_id, "FINISHED", end_time=ended)
