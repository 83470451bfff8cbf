"""Plain `cnnlab train` run folders read as a study, so runs trained by hand can be
reported on and compared like the runs of a study.

A folder given is a study folder (``study.sqlite``), a run folder (``config.json``)
or a folder of run folders. Runs whose settings differ only in the seed form one
variant, named by the settings that tell the variants apart; the first is the
baseline. A run's identity and id come from its ``summary.json`` (cnnlab 0.6 on);
older summaries get them computed from ``config.json``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.config.identity import (
    RUN_ID_LENGTH,
    canonical_json,
    flatten,
    identity_hash,
    run_identity,
)
from cnnlab.errors import CnnlabError
from cnnlab.records import ARTIFACTS, EpochRow, RunSummary
from cnnlab.study.store.database import load_results
from cnnlab.study.store.results import RunResult, StudyResults
from cnnlab.study.store.sqlite_schema import DB_NAME

ADVICE = "pass a folder written by `cnnlab run` or by `cnnlab train --out`"


def is_run_folder(path: Path) -> bool:
    return (path / ARTIFACTS["config"]).is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CnnlabError(f"{path}: not readable JSON ({exc}); {ADVICE}") from None
    if not isinstance(data, dict):
        raise CnnlabError(f"{path}: not a cnnlab {path.name}; {ADVICE}")
    return data


def _fallback_identity(config: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_identity` without resolving the model (a builtin's defaults are not
    filled in, a model file counts by its path): for summaries written before cnnlab 0.6."""
    model = {"name": config.get("model"), "args": config.get("model_args") or {}}
    return run_identity(config, model)


def _history(path: Path) -> list[EpochRow]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [EpochRow.from_dict(row) for row in csv.DictReader(f)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnlabError(f"{path}: not a cnnlab metrics.csv ({exc}); {ADVICE}") from None


def read_run_folder(folder: Path) -> RunResult:
    config = _read_json(folder / ARTIFACTS["config"])
    summary = None
    if (folder / ARTIFACTS["summary"]).is_file():
        data = _read_json(folder / ARTIFACTS["summary"])
        try:
            summary = RunSummary.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise CnnlabError(
                f"{folder / ARTIFACTS['summary']}: not a cnnlab summary ({exc}); {ADVICE}"
            ) from None
    identity = summary.identity if summary and summary.identity else _fallback_identity(config)
    run_id = (summary.run_id if summary else None) or identity_hash(identity)[:RUN_ID_LENGTH]
    if summary is not None:
        status = "done"
    elif (folder / ARTIFACTS["error"]).is_file():
        status = "failed"
    else:  # started (config.json is written first) but not finished
        status = "interrupted"
    return RunResult(
        run_id=run_id,
        variant="",
        seed=int(config.get("seed", 0)),
        status=status,
        config=config,
        run_dir=folder.absolute(),
        history=_history(folder / ARTIFACTS["metrics"]),
        summary=summary,
        device="" if summary is None or summary.provenance is None else summary.provenance.device,
        identity=identity,
        provenance=None if summary is None else summary.provenance,
    )


def _values(settings: dict[str, Any] | None) -> dict[str, str]:
    """Dotted settings as text, the model (its name and every argument) as one value."""
    rest = flatten({k: v for k, v in (settings or {}).items() if k != "model"})
    return {k: canonical_json(v) for k, v in rest.items()} | {
        "model": canonical_json((settings or {}).get("model"))
    }


def _variant_names(groups: list[list[RunResult]]) -> list[str]:
    """Each group named by the settings that tell it from the others ("lr=0.01")."""
    if len(groups) == 1:
        return [str(groups[0][0].config.get("model", "run"))]
    flats = [_values(g[0].settings) for g in groups]
    keys = sorted({k for f in flats for k in f if len({g.get(k) for g in flats}) > 1})
    names = []
    for group, flat in zip(groups, flats, strict=True):
        shown = {**flat, "model": str(group[0].config.get("model"))}
        parts = [
            f"{key.removeprefix('optimizer.')}={shown.get(key, '-').strip(chr(34))}" for key in keys
        ]
        names.append(", ".join(parts)[:80] or group[0].run_dir.name)
    for i, name in enumerate(names):  # settings that print alike (very long values)
        if names.count(name) > 1:
            names[i] = f"{name} [{groups[i][0].run_dir.name}]"
    return names


def run_folders_study(folders: Sequence[Path]) -> StudyResults:
    """An ad-hoc study of run folders, in the order given (the first run's variant is the
    baseline)."""
    runs = [read_run_folder(Path(f)) for f in folders]
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(canonical_json(run.settings), []).append(run)
    ordered = list(groups.values())
    names = _variant_names(ordered)
    for name, group in zip(names, ordered, strict=True):
        group.sort(key=lambda r: r.seed)
        for run in group:
            run.variant = name
    datasets = list(dict.fromkeys(str(r.config.get("dataset", "")) for r in runs))
    parents = {Path(f).absolute().parent for f in folders}
    return StudyResults(
        name=parents.pop().name if len(parents) == 1 else "runs",
        dataset=", ".join(datasets),
        baseline=names[0],
        variants=names,
        runs=[r for group in ordered for r in group],
        study_dir=Path(folders[0]).absolute().parent,
        description=f"{len(runs)} `cnnlab train` run folders, grouped by their settings",
    )


def load_any(paths: Sequence[Path]) -> StudyResults:
    """One study folder, or run folders (given one by one, or as a folder holding them)."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise CnnlabError(f"{p}: no such folder; {ADVICE}")
        if not p.is_dir():
            raise CnnlabError(f"{p}: not a folder; {ADVICE}")
    studies = [p for p in paths if (p / DB_NAME).is_file()]
    if studies:
        if len(paths) > 1:
            raise CnnlabError(
                f"{studies[0]} is a study folder: give it alone (several folders are read "
                "as `cnnlab train` run folders)"
            )
        return load_results(paths[0])
    folders: list[Path] = []
    for p in paths:
        if is_run_folder(p):
            folders.append(p)
            continue
        inside = sorted(c for c in p.iterdir() if c.is_dir() and is_run_folder(c))
        if not inside:
            raise CnnlabError(f"{p}: no study results and no run folders here; {ADVICE}")
        folders += inside
    return run_folders_study(folders)
