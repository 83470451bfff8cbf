"""Checking a study file against the settings schema, every problem at once, each with
its place: the table, the key and the line of the file it is written on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from cnnlab.config.dataset import DIGITS_WILD, parse_dataset
from cnnlab.config.problems import Problems, describe_error
from cnnlab.config.schema import NESTED, TrainConfig, nested_form, setting_keys, short_names
from cnnlab.config.suggest import did_you_mean
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.study.plan.expand import format_value

# Settings a study sets in one place only: the dataset in [study], the seed from seeds.
STUDY_OWNED = ("dataset", "seed")
TABLES = "[study], [defaults], [[variant]], [grid], [[claim]], [search]"


def describe_file_error(err: Mapping[str, Any], models: Mapping[str, type[BaseModel]]) -> str:
    """A problem with the file's tables ([study] keys, missing tables) as one line."""
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown table [{loc[0]}]{did_you_mean(loc[0], ['study', 'defaults', 'variant', 'grid', 'claim', 'search'])}; allowed: {TABLES}"
        allowed = list(models[loc[0]].model_fields) if loc[0] in models else []
        return f"[{loc[0]}]: unknown key '{loc[-1]}'{did_you_mean(loc[-1], allowed)}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        if len(loc) == 1:
            hint = {
                "study": '[study] with name, dataset and seeds, e.g. name = "x", dataset = "mnist", seeds = [0, 1, 2]',
                "variant": '[[variant]] tables, each with a name and settings, e.g. name = "a", model = "lenet5"',
            }.get(loc[0], loc[0])
            return f"missing {hint}"
        return f"[{loc[0]}]: missing key '{'.'.join(loc[1:])}'"
    section = f"[{loc[0]}]" if loc else "(top level)"
    key = ".".join(loc[1:])
    if loc[:1] == ["study"] and loc[1:2] == ["seeds"] and kind == "too_short":
        return "[study]: seeds is empty; give at least one seed, e.g. seeds = [0, 1, 2]"
    if loc[:1] == ["grid"]:
        return f'[grid]: {key}: must be a list of values, e.g. "optimizer.lr" = [0.1, 0.01]'
    label = f"{section}: {key}" if key else section
    return f"{label} = {err.get('input')!r}: {err['msg']}"


def file_problems(
    exc: ValidationError, problems: Problems, models: Mapping[str, type[BaseModel]]
) -> None:
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        table = {"study": "[study]", "grid": "[grid]"}.get(loc[0]) if loc else None
        problems.add(describe_file_error(err, models), table, 0, loc[1] if len(loc) > 1 else "")


def allowed_settings() -> list[str]:
    return [k for k in TrainConfig.model_fields if k not in STUDY_OWNED]


def check_settings(
    settings: Mapping[str, Any], label: str, problems: Problems, table: str, index: int = 0
) -> dict[str, Any]:
    """Top-level keys of a [defaults] or [[variant]] table are settings (not dataset/seed),
    by their name or their flag's (``lr``: see :func:`~cnnlab.config.schema.nested_form`);
    the settings, nested, without the keys that are not, so their values are checked too."""
    settings = nested_form(settings)
    allowed = allowed_settings()
    extra = "name, " if table == "[[variant]]" else ""
    for key in settings:
        if key == "dataset":  # a variant's is checked against [study] dataset later
            if table != "[[variant]]":
                problems.add(
                    f"{label}: set the dataset once, in [study] dataset", table, index, key
                )
        elif key == "seed":
            problems.add(
                f"{label}: seeds come from [study] seeds (or --seeds), not 'seed'",
                table,
                index,
                key,
            )
        elif key not in allowed:
            problems.add(
                f"{label}: unknown setting '{key}'{did_you_mean(key, [*allowed, *short_names()])}; allowed: "
                f"{extra}{', '.join(allowed)}",
                table,
                index,
                key,
            )
    keep = [*allowed, "dataset"] if table == "[[variant]]" else allowed
    return {k: v for k, v in settings.items() if k in keep}


def variant_dataset_problem(study_dataset: str, variant_dataset: object) -> str | None:
    """Why a [[variant]] may not train on ``variant_dataset``, or None. Variants share the
    study's test split, so only options that shape the training split may differ: the
    train weights and printed styles of digits-wild."""
    refused = "set the dataset once, in [study] dataset"
    if not isinstance(variant_dataset, str):
        return refused
    try:
        study, variant = parse_dataset(study_dataset), parse_dataset(variant_dataset)
    except CnnlabError as exc:
        return str(exc)
    if study.kind != DIGITS_WILD or variant.kind != DIGITS_WILD:
        return f"{refused} (a variant may change only digits-wild's training options)"
    if study.options.size != variant.options.size:
        return (
            f"dataset {variant_dataset!r} has another size than [study] dataset "
            f"{study_dataset!r}; variants share one test split, so only digits-wild's "
            "training options (mnist=, printed=, svhn=, styles=) may differ"
        )
    return None


def setting_key_problem(key: str) -> str | None:
    """Why ``key`` is not a dotted setting a study may vary ([grid], [search.space]), or None."""
    keys = [k for k in setting_keys() if k.split(".")[0] not in STUDY_OWNED]
    parts = key.split(".")
    top = parts[0]
    if top in STUDY_OWNED:
        what = "[study] dataset" if top == "dataset" else "[study] seeds"
        return f"'{key}' cannot be varied; use {what}"
    if top not in TrainConfig.model_fields:
        return (
            f"unknown setting '{key}'{did_you_mean(key, keys)}; allowed: "
            f'{", ".join(allowed_settings())} (dotted for nested ones, e.g. "optimizer.lr")'
        )
    if len(parts) > 1 and not (top == "model_args" and len(parts) == 2):
        sub = NESTED.get(top)
        if sub is None or len(parts) != 2:
            return f"'{key}': '{top}' has no setting '{'.'.join(parts[1:])}'"
        if parts[1] not in sub.model_fields:
            nested = [f"{top}.{k}" for k in sub.model_fields]
            return (
                f"unknown setting '{key}'{did_you_mean(key, nested)}; allowed: {', '.join(nested)}"
            )
    return None


def check_grid(grid: Mapping[str, list[Any]], problems: Problems) -> None:
    for key, values in grid.items():

        def add(message: str, key: str = key) -> None:
            problems.add(f"[grid]: {message}", "[grid]", 0, key)

        problem = setting_key_problem(key)
        if problem is not None:
            add(problem.replace("cannot be varied", "cannot be a grid key"))
            continue
        if not values:
            add(f"'{key}' has no values; give at least one")
        elif len({format_value(v) for v in values}) != len(values):
            add(f"'{key}' lists a value twice")


def check_defaults(defaults: dict[str, Any], problems: Problems) -> None:
    """The values of [defaults] on their own, against the schema (its defaults fill in)."""
    try:
        TrainConfig.model_validate(defaults)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc:  # a rule across settings is the variants' to break
                line = describe_error(dict(err), "[defaults]", TrainConfig)
                problems.add(line, "[defaults]", 0, ".".join(loc))
    except ConfigError as exc:
        problems.add(f"[defaults]: {exc}", "[defaults]")
