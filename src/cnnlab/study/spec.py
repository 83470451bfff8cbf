"""Study files: parse, validate and expand a study into self-contained planned runs.

A study file is TOML::

    [study]                       name, dataset, seeds; optional description, baseline
    [defaults]                    any TrainConfig setting, for every variant
    [[variant]]                   name + any TrainConfig setting (overrides [defaults])
    [grid]                        optional: "dotted.key" = [values], crossed with every variant

Everything is checked before anything runs; each problem is one ConfigError line
that starts with the study file and names the variant and the key.

Run identity. Every run's fully resolved settings, with the model replaced by its
resolved description (a builtin's name and every argument, defaults filled in; a
model file's validated layers and input size) and without ``data_dir``, are written
as canonical JSON (sorted keys, no spaces) and hashed with SHA-256; the first 16
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
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cnnlab.config.dataset import parse_dataset
from cnnlab.config.files import read_toml_text
from cnnlab.config.schema import TrainConfig, make_config
from cnnlab.errors import CnnlabError, ConfigError

IDENTITY_VERSION = 1  # bump when the meaning of the hashed identity changes
RUN_ID_LENGTH = 16
# Settings added to TrainConfig after identity version 1, with their defaults: hashed only when
# set to something else, so runs recorded before they existed keep their ids and results.
SETTINGS_ADDED_SINCE_V1: dict[str, Any] = {"ema_decay": None, "tta": "none", "compile": False}
# Settings a study sets in one place only: the dataset in [study], the seed from seeds.
STUDY_OWNED = ("dataset", "seed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudySection(_Strict):
    name: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    description: str = ""
    baseline: str | None = None


class StudyFile(_Strict):
    study: StudySection
    defaults: dict[str, Any] = Field(default_factory=dict)
    variant: list[dict[str, Any]] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One expanded variant: a [[variant]] at one grid point, with its settings merged."""

    name: str  # "7-layer" or, with a grid, "7-layer lr=0.1"
    base: str  # the [[variant]] name
    settings: dict[str, Any]  # [defaults] + variant + grid point, before the seed


@dataclass(frozen=True)
class PlannedRun:
    """A run, self-contained: everything an executor needs is here (picklable)."""

    run_id: str  # config_hash[:16]
    config_hash: str  # sha256 of the canonical identity JSON
    variant: str
    seed: int
    config: TrainConfig  # exactly what train() gets
    run_dir: Path  # absolute: <out>/runs/<variant-slug>-s<seed>-<run_id[:8]>
    identity: dict[str, Any] = field(compare=False, repr=False)  # what the hash covers


@dataclass
class Study:
    """A validated study file with the command line's overrides applied."""

    path: Path
    text: str
    name: str
    description: str
    dataset: str
    seeds: list[int]
    baseline: str  # an expanded variant name
    variants: list[Variant]
    options: dict[str, Any]  # the overrides, as recorded in the store
    configs: dict[tuple[str, int], TrainConfig] = field(default_factory=dict, repr=False)
    identities: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def plan(self, out_dir: Path) -> list[PlannedRun]:
        """Every (variant, seed) run in file order (variants as written, seeds as listed)."""
        out_dir = Path(out_dir).absolute()
        runs = []
        for v in self.variants:
            for seed in self.seeds:
                identity = self.identities[(v.name, seed)]
                digest = identity_hash(identity)
                run_id = digest[:RUN_ID_LENGTH]
                runs.append(
                    PlannedRun(
                        run_id=run_id,
                        config_hash=digest,
                        variant=v.name,
                        seed=seed,
                        config=self.configs[(v.name, seed)],
                        run_dir=out_dir / "runs" / f"{slugify(v.name)}-s{seed}-{run_id[:8]}",
                        identity=identity,
                    )
                )
        return runs


# ---------------------------------------------------------------------------------------------
# Identity and hashing


def model_identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What of a resolved ModelSpec (``model_dump(mode="json")``) decides the model.

    A builtin: its name and every argument (defaults filled in). A model file: its
    layers (every default written out, init included) and input size; not its path,
    name or description.
    """
    if spec.get("layers") is None:
        return {"builtin": spec["name"], "args": dict(spec.get("args") or {})}
    return {"layers": spec["layers"], "input_size": spec.get("input_size")}


def run_identity(config: Mapping[str, Any], model_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The location-free settings of a run: ``config`` (a config dict) minus ``data_dir``,
    with ``model``/``model_args`` replaced by :func:`model_identity` of ``model_spec``."""
    settings = {k: v for k, v in config.items() if k not in ("data_dir", "model", "model_args")}
    for key, default in SETTINGS_ADDED_SINCE_V1.items():
        if settings.get(key) == default:
            del settings[key]
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


# ---------------------------------------------------------------------------------------------
# Loading


def load_study(
    path: Path,
    *,
    dataset: str | None = None,
    seeds: Sequence[int] | None = None,
    epochs_scale: float | None = None,
    data_dir: Path | None = None,
    variants: Sequence[str] | None = None,
) -> Study:
    """Read, validate and expand a study file; raise a one-line ConfigError on any problem.

    ``dataset`` replaces [study] dataset (a ``folder:`` path relative to the current
    folder), ``seeds`` the seed list, ``data_dir`` every run's data_dir;
    ``epochs_scale`` multiplies every run's epochs (rounded half up, at least 1) and
    stretches the epoch-based schedule settings (``warmup_epochs``, ``step_every``)
    by the same factor as the epochs actually changed. ``variants`` keeps only the
    variants named (a [[variant]] name keeps all its grid points); the baseline stays the
    study's when it is kept, else it is the first variant kept.
    """
    path = Path(path)
    where = str(path)
    text, raw = read_toml_text(path)
    base = path.absolute().parent
    parsed = _parse_file(raw, where)
    section = parsed.study

    if seeds is not None:
        seeds = list(seeds)
        if not seeds:
            raise ConfigError(f"{where}: --seeds is empty; give at least one seed, e.g. 0,1,2")
    seed_list = list(seeds if seeds is not None else section.seeds)
    if len(set(seed_list)) != len(seed_list):
        dup = sorted({s for s in seed_list if seed_list.count(s) > 1})
        raise ConfigError(
            f"{where}: seed {dup[0]} is listed twice; each seed runs once per variant"
        )
    if epochs_scale is not None and not (math.isfinite(epochs_scale) and epochs_scale > 0):
        raise ConfigError(f"--epochs-scale {epochs_scale}: must be a positive number, e.g. 0.2")

    if dataset is not None:
        study_dataset = _absolute_dataset(dataset, "--dataset", Path.cwd())
    else:
        study_dataset = _absolute_dataset(section.dataset, f"{where}: [study] dataset", base)

    defaults = _checked_settings(parsed.defaults, f"{where}: [defaults]", base)
    _make_config(defaults, f"{where}: [defaults]")
    grid = _checked_grid(parsed.grid, where)

    bases: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(parsed.variant, start=1):
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(
                f'{where}: variant #{i} needs a name, e.g. name = "7-layer" (got {name!r})'
            )
        if any(name == seen for seen, _ in bases):
            raise ConfigError(f"{where}: variant name '{name}' is used twice; names must differ")
        settings = {k: v for k, v in entry.items() if k != "name"}
        label = f"{where}: variant '{name}'"
        settings = _checked_settings(settings, label, base, variant=True)
        bases.append((name, _merge(defaults, settings)))

    all_variants: list[Variant] = []
    labels = _grid_labels(list(grid))
    for name, settings in bases:
        for point in itertools.product(*grid.values()) if grid else [()]:
            merged = settings
            suffix = []
            for (key, value), label in zip(zip(grid, point, strict=True), labels, strict=True):
                merged = _set_dotted(merged, key, _relative_value(key, value, base))
                suffix.append(f"{label}={_format_value(value)}")
            full = " ".join([name, *suffix])
            if any(v.name == full for v in all_variants):
                raise ConfigError(
                    f"{where}: variant name '{full}' comes out twice from the grid; "
                    "make the variant names or the grid values differ"
                )
            all_variants.append(Variant(name=full, base=name, settings=merged))

    baseline = _baseline(section.baseline, all_variants, where)
    if variants is not None:
        chosen = _chosen_variants(all_variants, variants, where)
        baseline = baseline if any(v.name == baseline for v in chosen) else chosen[0].name
        all_variants = chosen
    study = Study(
        path=path,
        text=text,
        name=section.name,
        description=section.description,
        dataset=study_dataset,
        seeds=seed_list,
        baseline=baseline,
        variants=all_variants,
        options={
            "dataset": study_dataset if dataset is not None else None,
            "seeds": list(seeds) if seeds is not None else None,
            "epochs_scale": epochs_scale,
            "variants": list(variants) if variants is not None else None,
            "data_dir": str(Path(data_dir).expanduser().resolve())
            if data_dir is not None
            else None,
        },
    )
    _resolve_runs(study, epochs_scale, data_dir, where)
    return study


def _parse_file(raw: dict[str, Any], where: str) -> StudyFile:
    if "variant" in raw and not isinstance(raw["variant"], list):
        raise ConfigError(f"{where}: write each variant as a [[variant]] table (double brackets)")
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    models: dict[str, type[BaseModel]] = {"study": StudySection}
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown table [{loc[0]}]; allowed: [study], [defaults], [[variant]], [grid]"
        allowed = ", ".join(models[loc[0]].model_fields) if loc[0] in models else ""
        return f"[{loc[0]}]: unknown key '{loc[-1]}'; allowed: {allowed}"
    if kind == "missing":
        if len(loc) == 1:
            hint = {
                "study": '[study] with name, dataset and seeds, e.g. name = "x", dataset = "mnist", seeds = [0, 1, 2]',
                "variant": '[[variant]] tables, each with a name and settings, e.g. name = "a", model = "lenet5"',
            }.get(loc[0], loc[0])
            return f"missing {hint}"
        return f"[{loc[0]}]: missing key '{'.'.join(loc[1:])}'"
    if loc and loc[0] == "variant" and kind == "too_short":
        return "no [[variant]] tables; add at least one"
    section = f"[{loc[0]}]" if loc else "(top level)"
    key = ".".join(loc[1:])
    if loc[:1] == ["study"] and loc[1:2] == ["seeds"] and kind == "too_short":
        return "[study]: seeds is empty; give at least one seed, e.g. seeds = [0, 1, 2]"
    if loc[:1] == ["grid"]:
        return f'[grid]: {key}: must be a list of values, e.g. "optimizer.lr" = [0.1, 0.01]'
    label = f"{section}: {key}" if key else section
    return f"{label} = {err.get('input')!r}: {err['msg']}"


def _checked_settings(
    settings: dict[str, Any], label: str, base: Path, variant: bool = False
) -> dict[str, Any]:
    """Top-level keys are TrainConfig settings (not dataset/seed); paths made absolute."""
    allowed = [k for k in TrainConfig.model_fields if k not in STUDY_OWNED]
    for key in settings:
        if key == "dataset":
            raise ConfigError(f"{label}: set the dataset once, in [study] dataset")
        if key == "seed":
            raise ConfigError(f"{label}: seeds come from [study] seeds (or --seeds), not 'seed'")
        if key not in allowed:
            extra = "name, " if variant else ""
            raise ConfigError(
                f"{label}: unknown setting '{key}'; allowed: {extra}{', '.join(allowed)}"
            )
    out = dict(settings)
    for key in ("model", "data_dir"):
        if key in out:
            out[key] = _relative_value(key, out[key], base)
    return out


def _checked_grid(grid: dict[str, list[Any]], where: str) -> dict[str, list[Any]]:
    nested = {
        name: f.annotation
        for name, f in TrainConfig.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }
    for key, values in grid.items():
        parts = key.split(".")
        top = parts[0]
        if top in STUDY_OWNED:
            what = "[study] dataset" if top == "dataset" else "[study] seeds"
            raise ConfigError(f"{where}: [grid]: '{key}' cannot be a grid key; use {what}")
        if top not in TrainConfig.model_fields:
            allowed = [k for k in TrainConfig.model_fields if k not in STUDY_OWNED]
            raise ConfigError(
                f"{where}: [grid]: unknown setting '{key}'; allowed: {', '.join(allowed)} "
                '(dotted for nested ones, e.g. "optimizer.lr")'
            )
        if len(parts) > 1:
            sub = nested.get(top)
            if top == "model_args" and len(parts) == 2:
                pass
            elif sub is None or len(parts) != 2:
                raise ConfigError(
                    f"{where}: [grid]: '{key}': '{top}' has no setting '{'.'.join(parts[1:])}'"
                )
            elif parts[1] not in sub.model_fields:
                raise ConfigError(
                    f"{where}: [grid]: unknown setting '{key}'; allowed: "
                    f"{', '.join(f'{top}.{k}' for k in sub.model_fields)}"
                )
        if not values:
            raise ConfigError(f"{where}: [grid]: '{key}' has no values; give at least one")
        formatted = [_format_value(v) for v in values]
        if len(set(formatted)) != len(formatted):
            raise ConfigError(f"{where}: [grid]: '{key}' lists a value twice")
    return grid


def _grid_labels(keys: list[str]) -> list[str]:
    """The short label of each grid key in variant names: its last part, unless ambiguous."""
    last = [k.split(".")[-1] for k in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return canonical_json(value)


def _is_model_path(name: str) -> bool:
    # The rule of cnnlab.models.registry.resolve_model.
    return name.endswith(".toml") or "/" in name or "\\" in name


def _relative_value(key: str, value: Any, base: Path) -> Any:
    """Model file and data_dir paths in a study file are relative to the study file."""
    if key == "model" and isinstance(value, str) and _is_model_path(value):
        return str((base / Path(value).expanduser()).resolve())
    if key == "data_dir" and isinstance(value, str):
        return str((base / Path(value).expanduser()).resolve())
    return value


def _absolute_dataset(dataset: str, where: str, base: Path) -> str:
    try:
        return parse_dataset(dataset).relative_to(base).text
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _merge(defaults: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Variant settings over defaults; nested tables (optimizer, schedule) merge key by key.
    ``model_args`` is replaced whole: another model's arguments would not fit."""
    out = dict(defaults)
    for key, value in settings.items():
        if key != "model_args" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    if "model" in settings and "model_args" not in settings:
        out.pop("model_args", None)
    return out


def _set_dotted(settings: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(settings)
    parts = key.split(".")
    if len(parts) == 1:
        out[key] = value
        return out
    inner = dict(out.get(parts[0]) or {})
    inner[parts[1]] = value
    out[parts[0]] = inner
    return out


def _chosen_variants(variants: list[Variant], names: Sequence[str], where: str) -> list[Variant]:
    """The variants named (expanded names or [[variant]] names), in file order."""
    known = {v.name for v in variants} | {v.base for v in variants}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        listed = ", ".join(dict.fromkeys(v.base for v in variants))
        what = f"no variant '{unknown[0]}'" if unknown else "--variants is empty"
        raise ConfigError(f"{where}: {what}; variants: {listed}")
    return [v for v in variants if v.name in names or v.base in names]


def _baseline(name: str | None, variants: list[Variant], where: str) -> str:
    if name is None:
        return variants[0].name
    for v in variants:
        if v.name == name:
            return v.name
    for v in variants:  # with a grid: a [[variant]] name means its first grid point
        if v.base == name:
            return v.name
    names = ", ".join(dict.fromkeys(v.base for v in variants))
    raise ConfigError(f"{where}: baseline '{name}' is not a variant; variants: {names}")


def scale_epochs(values: dict[str, Any], scale: float) -> dict[str, Any]:
    """``values`` (a config dict) with epochs scaled and epoch-based schedule lengths stretched."""
    epochs = values["epochs"]
    scaled = max(1, math.floor(epochs * scale + 0.5))
    out = dict(values, epochs=scaled)
    schedule = dict(out["schedule"])
    schedule["warmup_epochs"] = schedule["warmup_epochs"] * scaled / epochs
    schedule["step_every"] = max(1, math.floor(schedule["step_every"] * scaled / epochs + 0.5))
    out["schedule"] = schedule
    return out


def _make_config(values: dict[str, Any], label: str) -> TrainConfig:
    """make_config, with ``label`` in front of every message (some validators raise their
    own ConfigError, without the location)."""
    try:
        return make_config(values, where=label)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(label) else f"{label}: {message}") from None


def _resolve_runs(
    study: Study, epochs_scale: float | None, data_dir: Path | None, where: str
) -> None:
    """Build and check every run's TrainConfig and identity; reject identical variants."""
    from cnnlab.config.schema import config_dict
    from cnnlab.models.registry import resolve_model

    specs: dict[tuple[str, str], dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for v in study.variants:
        label = f"{where}: variant '{v.name}'"
        for seed in study.seeds:
            values = dict(v.settings, dataset=study.dataset, seed=seed)
            if data_dir is not None:
                values["data_dir"] = str(Path(data_dir).expanduser().resolve())
            cfg = _make_config(values, label)
            if epochs_scale is not None:
                cfg = _make_config(scale_epochs(config_dict(cfg), epochs_scale), label)
            key = (cfg.model, canonical_json(cfg.model_args))
            if key not in specs:
                if _is_model_path(cfg.model) and not Path(cfg.model).is_file():
                    raise ConfigError(
                        f"{label}: model file not found: {cfg.model} "
                        f"(model paths are relative to the study file's folder, {study.path.absolute().parent})"
                    )
                try:
                    spec = resolve_model(cfg.model, cfg.model_args)
                except CnnlabError as exc:
                    raise ConfigError(f"{label}: {exc}") from None
                specs[key] = spec.model_dump(mode="json")
            identity = run_identity(config_dict(cfg), specs[key])
            digest = identity_hash(identity)
            if digest in seen and seen[digest] != v.name:
                raise ConfigError(
                    f"{where}: variants '{seen[digest]}' and '{v.name}' have exactly the same "
                    "settings; remove one or make them differ"
                )
            seen[digest] = v.name
            study.configs[(v.name, seed)] = cfg
            study.identities[(v.name, seed)] = identity
