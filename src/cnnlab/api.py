"""The Python API: what the command line does, for notebooks and scripts.

    import cnnlab
    record = cnnlab.train(model="lenet5", dataset="mnist", epochs=2, lr=1e-3, out="runs/a")
    results = cnnlab.run_study("studies/quick-fashion.toml", epochs_scale=0.2)
    results.to_dataframe()                     # one row per run (pandas)
    cnnlab.predict("runs/a/checkpoint.pt", ["digit.png"])

Settings are the CLI's: every TrainConfig key (nested tables as dicts, e.g.
``optimizer={"name": "sgd", "lr": 0.1}``) or the flag's name for a nested one (``lr``,
``momentum``, ``warmup_epochs``); a misspelt one is a one-line ConfigError. Errors are
the CLI's CnnlabErrors (ConfigError, DataError, RunFailed), each one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.config.schema import (
    TrainConfig,
    config_dict,
    make_config,
    merge_settings,
    nested_form,
    short_names,
)
from cnnlab.config.suggest import did_you_mean
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.from_arrays import from_arrays
from cnnlab.errors import ConfigError
from cnnlab.inference.predict import Prediction
from cnnlab.models.factories import (
    ONLY_HERE_FIX,
    only_here,
    register_model,
    remember_factory,
    remember_instance,
)
from cnnlab.records import RunRecord
from cnnlab.study.store.results import StudyResults

__all__ = [
    "Dataset", "load_dataset", "load_results", "predict", "register_model", "run_study", "train",
]  # fmt: skip


class Dataset:
    """Datasets handed over in Python: ``Dataset.from_arrays(x_train, y_train, x_test,
    y_test, classes=[...])`` -> the DatasetArrays that ``train``/``run_study`` take."""

    from_arrays = staticmethod(from_arrays)


def load_dataset(name: str, data_dir: str | Path | None = None) -> DatasetArrays:
    """A dataset as cnnlab reads it, e.g. ``load_dataset("mnist")``: ``.train`` and
    ``.test`` (uint8 ``images`` N x C x H x W, int ``labels``), ``.classes``. ``name`` is
    any dataset setting (``"fashion-mnist"``, ``"folder:photos.tar.gz"``, ...);
    ``data_dir`` as ``--data-dir`` (default ``$CNNLAB_DATA``)."""
    from cnnlab.config.schema import make_config
    from cnnlab.data.datasets import load_dataset as load

    ref = make_config({"dataset": name}, "load_dataset").dataset_ref  # one line if misspelt
    return load(ref, Path(data_dir) if data_dir is not None else None)


def settings_of(config: Any = None, **settings: Any) -> TrainConfig:
    """A validated TrainConfig from a config file / run folder / dict / TrainConfig, with
    ``settings`` on top (what the CLI's flags do)."""
    from cnnlab.config.files import load_config_file

    model = settings.get("model")
    if isinstance(model, nn.Module):
        settings["model"] = remember_instance(model)
    elif callable(model):  # a factory function or an nn.Module class
        settings["model"] = remember_factory(model)
    nested = nested_form(settings)
    unknown = [k for k in nested if k not in TrainConfig.model_fields]
    if unknown:
        known = [*TrainConfig.model_fields, *short_names()]
        raise ConfigError(f"unknown setting '{unknown[0]}'{did_you_mean(unknown[0], known)}")
    if isinstance(config, TrainConfig):
        return make_config(merge_settings(config_dict(config), nested), "arguments")
    if isinstance(config, Mapping):
        return make_config(merge_settings(nested_form(config), nested), "arguments")
    if config is not None:
        return load_config_file(Path(config), nested)
    return make_config(nested, "arguments")


def train(
    config: Any = None,
    *,
    out: str | Path | None = None,
    data: DatasetArrays | None = None,
    resume: bool = False,
    progress: bool | None = None,
    allow_device_change: bool = False,
    **settings: Any,
) -> RunRecord:
    """Train one run into ``out`` (default runs/<model>-<dataset>-s<seed>, as the CLI) and
    return its typed record (``.summary``, ``.history``, ``.run_dir``; ``.to_dataframe()``).
    ``data``: a :class:`Dataset` from arrays instead of the ``dataset`` setting.
    ``progress``: epochs as they train; by default shown in a notebook or a terminal."""
    from cnnlab.data.datasets import DataCache
    from cnnlab.models.registry import resolve_model
    from cnnlab.training.reporting import make_reporter
    from cnnlab.training.run import default_run_folder, train_run

    if data is not None:
        settings["dataset"] = data.name
    cfg = settings_of(config, **settings)
    resolve_model(cfg.model, cfg.model_args)  # refused before any data is read
    if only_here(cfg.model):
        _say_only_here(cfg.model)
    out = Path(out) if out is not None else default_run_folder(cfg)
    arrays = data if data is not None else DataCache().dataset(cfg.dataset_ref, cfg.data_dir)
    return train_run(
        cfg,
        out,
        data=arrays,
        resume=resume,
        reporter=make_reporter(not _show_progress(progress)),
        allow_device_change=allow_device_change,
    )


def _show_progress(asked: bool | None) -> bool:
    """``progress=None``: shown in a notebook or a terminal, quiet in a pipe or a test."""
    if asked is not None:
        return asked
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    in_notebook = shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    return in_notebook or sys.stdout.isatty()


def _say_only_here(path: str) -> None:
    """One line, at train time, for a model no other process can rebuild."""
    import warnings

    given = "a model object" if "_object_" in path else f"'{path}'"
    weights = " (its weights as given: seeds vary data order and augmentation only)"
    warnings.warn(
        f"cnnlab: {given} trains here{weights if '_object_' in path else ''}, but `cnnlab "
        f"predict`, `evaluate` and `export` in another process cannot rebuild it: "
        f"{ONLY_HERE_FIX}",
        UserWarning,
        stacklevel=3,
    )


def run_study(
    study: str | Path,
    *,
    out: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    epochs_scale: float | None = None,
    variants: Sequence[str] | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    data: DatasetArrays | None = None,
    executor: str | None = None,
    workers: int | None = None,
    threads_per_run: int | None = None,
    gpus_per_run: float = 0.0,
    address: str | None = None,
    retry_failed: bool = False,
    report: bool = True,
    progress: bool | None = None,
) -> StudyResults:
    """Run a study file as `cnnlab run` does (resumable; done runs are skipped) and return
    its results (``.runs``, ``.to_dataframe()``); writes the report unless ``report=False``.
    ``executor``/``workers``/``threads_per_run``: as the command's flags (default: local
    worker processes, as many as the machine runs well). ``data``: arrays from
    :class:`Dataset` for every run; they live in this process, so the runs train here."""
    from cnnlab.study.plan.study_file import load_study
    from cnnlab.study.run.executor import InProcessExecutor
    from cnnlab.study.run.executor_choice import ExecutorChoice, choose_executor
    from cnnlab.study.run.runner import default_out_dir
    from cnnlab.study.run.runner import run_study as run_planned
    from cnnlab.study.run.study_progress import make_study_progress

    if data is not None:
        if executor not in (None, "inprocess"):
            raise ConfigError(
                "data= arrays live in this process: leave executor out (or 'inprocess'), or "
                "save them as an image folder for worker processes"
            )
        executor, dataset = "inprocess", data.name
    loaded = load_study(
        Path(study),
        dataset=dataset,
        seeds=seeds,
        epochs_scale=epochs_scale,
        data_dir=Path(data_dir) if data_dir is not None else None,
        variants=variants,
    )
    out_dir = Path(out) if out is not None else default_out_dir(loaded)
    choice = ExecutorChoice(executor, workers, threads_per_run, address=address,
                            gpus_per_run=gpus_per_run)  # fmt: skip
    chosen = choose_executor(choice, any(c.device != "cpu" for c in loaded.configs.values()))
    if data is not None:
        assert isinstance(chosen, InProcessExecutor)
        for cfg in loaded.configs.values():
            chosen.data.hold(data, cfg.data_dir)
    outcome = run_planned(
        loaded, out_dir, retry_failed=retry_failed, executor=chosen,
        progress=make_study_progress(not _show_progress(progress)),
    )  # fmt: skip
    if report:
        from cnnlab.analysis.render import write_report

        write_report(outcome.results, out_dir, predictions=data is None)
    return outcome.results


def load_results(*folders: str | Path) -> StudyResults:
    """A study folder's results, or `cnnlab train` run folders read as one study."""
    from cnnlab.study.store.folders import load_any

    if not folders:
        raise ConfigError("load_results() needs a study folder or run folders")
    return load_any([Path(f) for f in folders])


def predict(
    checkpoint: str | Path,
    images: str | Path | Iterable[str | Path],
    *,
    top_k: int = 3,
    device: str = "auto",
    invert: str = "auto",
    locate: str = "auto",
) -> list[Prediction]:
    """Top-k labels for image files (folders are walked), in their order; a file that
    cannot be read carries its ``error`` instead of labels. ``locate`` crops a picture to
    its largest figure first: ``auto`` does for digit models."""
    from cnnlab.inference.predict import find_images, predict_files
    from cnnlab.training.checkpoint import load_checkpoint

    paths = [Path(images)] if isinstance(images, str | Path) else [Path(p) for p in images]
    ckpt = load_checkpoint(Path(checkpoint))
    files = find_images(paths)
    return list(
        predict_files(ckpt, files, top_k=top_k, invert=invert, locate=locate, device=device)  # type: ignore[arg-type]
    )
