"""Run identity: the location-free settings of a run, hashed; the first 16 hex digits are
the run id.

Every run's fully resolved settings, with the model replaced by its resolved
description (a builtin's name and every argument, defaults filled in; a model file's
validated layers and input size; a factory's import path and arguments) and without
``data_dir`` or what only logs (``tensorboard``), are written as canonical JSON (sorted keys, no spaces) and hashed with SHA-256; the first 16
hex digits are the run id. So the id does not depend on where the study file, the
model files, the output folder or the data live: moving or copying a study keeps
its results, while editing a model file or any setting makes new runs (old results
stay in the store). The TrainConfig handed to ``train()`` carries the model file's
absolute path (``train()`` resolves it from any working directory); only the hash
ignores that path. ``dataset`` stays in the hash as written, so a ``folder:PATH``
dataset that moves gets new ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

IDENTITY_VERSION = 1  # bump when the meaning of the hashed identity changes
RUN_ID_LENGTH = 16
# Settings added to TrainConfig after identity version 1, with their defaults: hashed only when
# set to something else, so runs recorded before they existed keep their ids and results.
# A dotted key names a setting inside a table (optimizer.muon_lr). The values are the
# defaults each had when added, kept here (not read from the schema) so that a later change
# of a schema default cannot move the ids of runs already stored.
SETTINGS_ADDED_SINCE_V1: dict[str, Any] = {
    "ema_decay": None, "tta": "none", "compile": False, "deterministic": False,
    "max_steps": None, "limit_batches": None, "train_subset": None,
    "optimizer.muon_lr": 0.05, "optimizer.muon_momentum": 0.6, "evaluate": "each-epoch",
}  # fmt: skip


# Where a run reads its data and what it logs besides its results: not what the run is, so
# not in its identity (moving the data or turning TensorBoard on keeps the run id).
# What only adds files to a run folder: turned on or off, the run is the same run.
OUTPUT_ONLY = ("tensorboard", "keep_checkpoints")
NOT_IDENTITY = ("data_dir", *OUTPUT_ONLY)


def model_identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What of a resolved ModelSpec (``model_dump(mode="json")``) decides the model.

    A builtin: its name and every argument (defaults filled in). A model file: its
    layers (every default written out, init included) and input size; not its path,
    name or description.
    """
    if spec.get("factory"):  # your own model: its import path, not the name it was given
        return {"factory": spec["factory"], "args": dict(spec.get("args") or {})}
    if spec.get("layers") is None:
        return {"builtin": spec["name"], "args": dict(spec.get("args") or {})}
    return {"layers": spec["layers"], "input_size": spec.get("input_size")}


def run_identity(config: Mapping[str, Any], model_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The location-free settings of a run: ``config`` (a config dict) minus ``NOT_IDENTITY``,
    with ``model``/``model_args`` replaced by :func:`model_identity` of ``model_spec``."""
    settings = {k: v for k, v in config.items() if k not in (*NOT_IDENTITY, "model", "model_args")}
    for key, default in SETTINGS_ADDED_SINCE_V1.items():
        *tables, name = key.split(".")
        table = settings
        for t in tables:
            table[t] = dict(table.get(t) or {})  # a copy: the config stays as given
            table = table[t]
        if table.get(name) == default:
            del table[name]
    settings["model"] = model_identity(model_spec)
    return {"identity": IDENTITY_VERSION, "settings": settings}


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def identity_hash(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()


def slugify(name: str) -> str:
    """A folder-safe form of a variant name: "+dropout lr=0.1" -> "dropout-lr-0.1"."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug[:60] or "variant"


def flatten(settings: dict[str, Any] | None) -> dict[str, Any]:
    """A run's settings (an identity's ``settings``) with dotted keys ("optimizer.lr"); the model as its name plus one key per argument
    ("model.batch_norm"), a model file's layers as a short hash."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key == "model" and isinstance(value, dict):
            if "builtin" in value or "factory" in value:
                out["model"] = value.get("builtin") or value["factory"]
                for arg, v in sorted((value.get("args") or {}).items()):
                    out[f"model.{arg}"] = v
            else:
                text = json.dumps(value, sort_keys=True)
                out["model"] = f"layers #{hashlib.sha256(text.encode()).hexdigest()[:8]}"
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out
