"""Study files: parse, validate and expand a study into self-contained planned runs.

A study file is TOML::

    [study]                       name, dataset, seeds (a list, or { start = 3, max = 12 }:
                                  seeds until decided); optional description, baseline
    [defaults]                    any TrainConfig setting, for every variant
    [[variant]]                   name + any TrainConfig setting (overrides [defaults])
    [grid]                        optional: "dotted.key" = [values], crossed with every variant

Everything is checked before anything runs, against the settings schema
(:class:`~cnnlab.config.schema.TrainConfig`): one ConfigError lists every problem, one
line each, starting with the study file and the line, naming the variant and the key.

Run identity: see :mod:`cnnlab.config.identity`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cnnlab.claims.claim import parse_claims
from cnnlab.config.files import read_toml_text
from cnnlab.config.identity import (
    SETTINGS_ADDED_SINCE_V1,
    run_identity,
)
from cnnlab.config.problems import Problems
from cnnlab.config.schema import merge_settings
from cnnlab.errors import ConfigError
from cnnlab.study.plan.checks import (
    check_defaults,
    check_grid,
    check_settings,
    file_problems,
)
from cnnlab.study.plan.expand import (
    absolute_dataset,
    absolute_value,
    format_value,
    grid_labels,
    set_dotted,
)
from cnnlab.study.plan.factor_claims import bind_factor_claims
from cnnlab.study.plan.resolve import resolve_runs
from cnnlab.study.plan.search_table import parse_search
from cnnlab.study.plan.seed_design import seed_plan
from cnnlab.study.plan.study_plan import (
    PlannedRun,
    Round,
    Study,
    Variant,
    baseline_of,
    chosen_variants,
)

__all__ = [
    "SETTINGS_ADDED_SINCE_V1",
    "PlannedRun",
    "Round",
    "Study",
    "Variant",
    "add_round",
    "load_study",
    "run_identity",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudySection(_Strict):
    name: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] = Field(min_length=1)
    description: str = ""
    baseline: str | None = None


class StudyFile(_Strict):
    study: StudySection
    defaults: dict[str, Any] = Field(default_factory=dict)
    variant: list[dict[str, Any]] = Field(default_factory=list)  # none: the [grid] alone
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    grid_name: str | None = None  # [grid] name = "{optimizer}+{batch_norm}": its points' names
    claim: list[Any] = Field(default_factory=list)  # checked by cnnlab.claims.claim
    search: dict[str, Any] | None = None  # checked by cnnlab.study.plan.search_table


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
    until_decided: int | None = None,
) -> Study:
    """Read, validate and expand a study file; raise a ConfigError listing every problem.

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
    problems = Problems(where, text)
    parsed, seeds_table = _parse_file(raw, problems)
    section = parsed.study
    seed_list = _seed_list(section.seeds, seeds, problems)
    if seeds_table is not None:
        seeds_plan = seed_plan(seeds_table, seeds, until_decided, problems)
    else:
        seeds_plan = seed_plan(seed_list, None, until_decided, problems)
    seed_list = seeds_plan.start
    if epochs_scale is not None and not (math.isfinite(epochs_scale) and epochs_scale > 0):
        problems.add(f"--epochs-scale {epochs_scale}: must be a positive number, e.g. 0.2")
        epochs_scale = None  # reported: the variants are still checked, unscaled
    study_dataset = section.dataset
    try:
        if dataset is not None:
            study_dataset = absolute_dataset(dataset, "--dataset", Path.cwd())
        else:
            study_dataset = absolute_dataset(section.dataset, "[study] dataset", base)
    except ConfigError as exc:
        problems.add(str(exc), "[study]", 0, "dataset")

    every_variant = _variants(parsed, base, problems)
    if not every_variant:
        problems.raise_if_any()
    claims = parse_claims(parsed.claim, [v.name for v in every_variant], problems)
    claims = bind_factor_claims(claims, every_variant, problems)
    kept, baseline = every_variant, ""
    try:
        baseline = baseline_of(section.baseline, every_variant, where)
        if variants is not None:
            kept = chosen_variants(every_variant, variants, where)
            baseline = baseline if any(v.name == baseline for v in kept) else kept[0].name
    except ConfigError as exc:
        problems.add(str(exc).removeprefix(f"{where}: "), "[study]", 0, "baseline")
    base_settings = next((v.settings for v in kept if v.name == baseline), {})
    search = parse_search(parsed.search, base_settings, problems)
    if search is not None and search.confirm_seeds and seeds is None and seeds_plan.design is None:
        seed_list = list(search.confirm_seeds)
    resolved = resolve_runs(kept, study_dataset, seed_list, epochs_scale, data_dir, problems)
    overrides = {
        "dataset": study_dataset if dataset is not None else None,
        "seeds": list(seeds) if seeds is not None else None,
        "epochs_scale": epochs_scale,
        "variants": list(variants) if variants is not None else None,
        "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()),
    }
    if until_decided is not None:  # only when asked: older folders' options stay as they were
        overrides["until_decided"] = until_decided
    return Study(
        path=path, text=text, name=section.name, description=section.description,
        dataset=study_dataset, seeds=seed_list, baseline=baseline, variants=kept,
        claims=claims, search=search, overrides=overrides,
        file_variants=list(dict.fromkeys(v.base for v in every_variant)),
        declared_baseline=section.baseline, design=seeds_plan.design, seed_pool=seeds_plan.pool,
        configs=resolved.configs, identities=resolved.identities,
    )  # fmt: skip


def _seed_list(written: list[int], given: Sequence[int] | None, problems: Problems) -> list[int]:
    """The seeds to run: ``given`` (--seeds) or the file's, each once."""
    seed_list = list(given if given is not None else written)
    if given is not None and not seed_list:
        problems.add("--seeds is empty; give at least one seed, e.g. 0,1,2")
    if len(set(seed_list)) != len(seed_list):
        dup = sorted({s for s in seed_list if seed_list.count(s) > 1})
        problems.add(
            f"seed {dup[0]} is listed twice; each seed runs once per variant", "[study]", 0, "seeds"
        )
    return seed_list


def _variants(parsed: StudyFile, base: Path, problems: Problems) -> list[Variant]:
    """Every [[variant]] over [defaults], at every grid point, each checked."""
    defaults = check_settings(parsed.defaults, "[defaults]", problems, "[defaults]")
    defaults = _absolute_paths(defaults, base)
    check_defaults(defaults, problems)
    before = len(problems.lines)
    check_grid(parsed.grid, problems)
    grid = parsed.grid if len(problems.lines) == before else {}  # variants are checked still
    bases: list[tuple[str, dict[str, Any]]] = []
    own_keys: dict[str, set[str]] = {}
    for i, entry in enumerate(parsed.variant):
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.add(
                f'variant #{i + 1} needs a name, e.g. name = "7-layer" (got {name!r})',
                "[[variant]]",
                i,
                "name",
            )
            continue
        if any(name == seen for seen, _ in bases):
            problems.add(
                f"variant name '{name}' is used twice; names must differ", "[[variant]]", i, "name"
            )
            continue
        settings = {k: v for k, v in entry.items() if k != "name"}
        settings = check_settings(settings, f"variant '{name}'", problems, "[[variant]]", i)
        bases.append((name, merge_settings(defaults, _absolute_paths(settings, base))))
        own_keys[name] = set(settings)
    if not parsed.variant and parsed.grid:  # the grid alone: its points are the variants
        bases.append(("", defaults))
        own_keys[""] = set()
    elif not parsed.variant:
        problems.add("no [[variant]] tables and no [grid]; add a [[variant]] or a [grid]")
    return _expand(bases, grid, base, problems, own_keys, parsed.grid_name)


def add_round(study: Study, round_: Round) -> Study:
    """``study`` grown by ``round_``: its variants added (after the study's own, every seed
    resolved as theirs are) or its seeds added to the variants it names, the round
    recorded. A variant name already planned, or a seed a variant already has, is refused."""
    taken = set(study.variant_names)
    clash = [v.name for v in round_.variants if v.name in taken]
    clash += [
        f"seed {s} of {v}" for v in round_.seeded for s in round_.seeds if s in study.seeds_of(v)
    ]
    if clash:
        raise ConfigError(f"{study.path}: round '{round_.kind}' adds '{clash[0]}' twice")
    unknown = [v for v in round_.seeded if v not in taken]
    if unknown:
        raise ConfigError(f"{study.path}: round '{round_.kind}' seeds '{unknown[0]}', not planned")
    problems = Problems(str(study.path), study.text)
    data_dir = study.overrides.get("data_dir")
    seeded = [v for v in study.variants if v.name in round_.seeded]
    resolved = resolve_runs(
        [*round_.variants, *seeded], study.dataset, list(round_.seeds) or study.seeds,
        study.overrides.get("epochs_scale"), Path(data_dir) if data_dir else None, problems,
        known=study.identities,
    )  # fmt: skip
    return replace(
        study,
        variants=[*study.variants, *round_.variants],
        rounds=(*study.rounds, round_),
        configs={**study.configs, **resolved.configs},
        identities={**study.identities, **resolved.identities},
    )


def _parse_file(raw: dict[str, Any], problems: Problems) -> tuple[StudyFile, Any]:
    """The file validated, and its [study] seeds table (seeds until decided) if it has one:
    the table is checked by :mod:`~cnnlab.study.plan.seed_design`, in its own words."""
    if "variant" in raw and not isinstance(raw["variant"], list):
        problems.add("write each variant as a [[variant]] table (double brackets)")
        problems.raise_if_any()
    section, table = raw.get("study"), None
    if isinstance(section, dict) and isinstance(section.get("seeds"), dict):
        table = section["seeds"]
        raw = {**raw, "study": {**section, "seeds": [0]}}  # a stand-in the list check passes
    grid = raw.get("grid")
    if isinstance(grid, dict) and isinstance(grid.get("name"), str):  # the names' template
        raw = {**raw, "grid": {k: v for k, v in grid.items() if k != "name"}}
        raw["grid_name"] = grid["name"]
    try:
        return StudyFile.model_validate(raw), table
    except ValidationError as exc:
        file_problems(exc, problems, {"study": StudySection})
        problems.raise_if_any()
        raise  # not reached: there was a problem


def _named(template: str, fields: dict[str, str], problems: Problems) -> str | None:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        keys = ", ".join("{" + k + "}" for k in fields)
        problems.add(
            f"[grid]: name = {template!r}: no field {exc}; use {keys}", "[grid]", 0, "name"
        )
        return None


def _absolute_paths(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    """``settings`` with their model file and data_dir paths made absolute."""
    return {k: absolute_value(k, v, base) for k, v in settings.items()}


def _expand(
    bases: list[tuple[str, dict[str, Any]]],
    grid: dict[str, list[Any]],
    base: Path,
    problems: Problems,
    own_keys: dict[str, set[str]],
    template: str | None = None,
) -> list[Variant]:
    """Every [[variant]] at every grid point, named "<variant> <key>=<value> ..." or by
    the [grid]'s ``name`` template ("{variant}", "{<key label>}")."""
    out: list[Variant] = []
    labels = grid_labels(list(grid))
    for name, settings in bases:
        for point in itertools.product(*grid.values()) if grid else [()]:
            merged = settings
            suffix = []
            at: dict[str, str] = {}
            for (key, value), label in zip(zip(grid, point, strict=True), labels, strict=True):
                merged = set_dotted(merged, key, absolute_value(key, value, base))
                suffix.append(f"{label}={format_value(value)}")
                at[label] = format_value(value)
            full = " ".join(part for part in (name, *suffix) if part)
            if template is not None:  # a template it cannot fill is reported, the default kept
                full = _named(template, {"variant": name, **at}, problems) or full
            if any(v.name == full for v in out):
                problems.add(
                    f"variant name '{full}' comes out twice from the grid; make the variant "
                    "names or the grid values differ"
                )
                continue
            own = frozenset(own_keys[name]) | {k.split(".")[0] for k in grid}
            out.append(Variant(name=full, base=name, settings=merged, own=own, point=at))
    return out
