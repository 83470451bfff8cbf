"""Each (variant, seed) of a study resolved: its variant's settings validated once (every
problem of every variant at once), its model resolved, then the seed's TrainConfig and
run identity; identical variants refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cnnlab.config.identity import identity_hash, run_identity
from cnnlab.config.problems import Problems, describe_error
from cnnlab.config.schema import TrainConfig
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.study.plan.checks import variant_dataset_problem
from cnnlab.study.plan.expand import is_model_path, scaled_config
from cnnlab.study.plan.study_plan import Variant


@dataclass(frozen=True)
class Resolved:
    """Each (variant, seed)'s TrainConfig and identity."""

    configs: dict[tuple[str, int], TrainConfig]
    identities: dict[tuple[str, int], dict[str, Any]]


def resolve_runs(
    variants: list[Variant],
    dataset: str,
    seeds: list[int],
    epochs_scale: float | None,
    data_dir: Path | None,
    problems: Problems,
    known: Mapping[tuple[str, int], dict[str, Any]] | None = None,
) -> Resolved:
    """Validate each variant once (every problem of every variant at once), resolve its
    model, then derive each seed's config and identity; reject identical variants (also
    identical to a ``known`` one, planned before)."""
    configs: dict[str, TrainConfig] = {}
    specs: dict[str, dict[str, Any]] = {}
    for v in variants:
        one = _resolve_variant(v, variants, dataset, seeds, data_dir, problems)
        if one is not None:
            cfg, specs[v.name] = one
            configs[v.name] = scaled_config(cfg, epochs_scale) if epochs_scale is not None else cfg
    problems.raise_if_any()

    seen = {identity_hash(i): name for (name, _), i in (known or {}).items()}
    out = Resolved({}, {})
    for v in variants:
        for seed in seeds:
            cfg = configs[v.name].model_copy(update={"seed": seed})
            identity = run_identity(cfg.model_dump(mode="json"), specs[v.name])
            digest = identity_hash(identity)
            if digest in seen and seen[digest] != v.name:
                raise ConfigError(
                    f"{problems.where}: variants '{seen[digest]}' and '{v.name}' have exactly "
                    "the same settings; remove one or make them differ"
                )
            seen[digest] = v.name
            out.configs[(v.name, seed)] = cfg
            out.identities[(v.name, seed)] = identity
    return out


def _resolve_variant(
    v: Variant,
    variants: list[Variant],
    dataset: str,
    seeds: list[int],
    data_dir: Path | None,
    problems: Problems,
) -> tuple[TrainConfig, dict[str, Any]] | None:
    """A variant's settings validated and its model resolved; None (with its problems
    added) when they do not hold."""
    from cnnlab.models.registry import resolve_model

    label, index = f"variant '{v.name}'", _variant_index(variants, v)
    values = dict(v.settings, dataset=dataset, seed=(seeds or [0])[0])
    if "dataset" in v.settings:  # digits-wild training options only (checks.py)
        if why := variant_dataset_problem(dataset, v.settings["dataset"]):
            problems.add(f"{label}: {why}", "[[variant]]", index, "dataset")
        values["dataset"] = v.settings["dataset"] if why is None else dataset
    if data_dir is not None:
        values["data_dir"] = str(Path(data_dir).expanduser().resolve())
    try:
        cfg = TrainConfig.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc and loc[0] in v.settings and loc[0] not in v.own:
                continue  # a value of [defaults]: reported once, as its own
            if loc == ["dataset"]:
                continue  # the study's dataset: reported once, as [study] dataset
            line = describe_error(dict(err), label, TrainConfig)
            problems.add(line, "[[variant]]", index, ".".join(loc))
        return None
    if is_model_path(cfg.model) and not Path(cfg.model).is_file():
        problems.add(
            f"{label}: model file not found: {cfg.model} (model paths are relative to "
            f"the study file's folder, {Path(problems.where).absolute().parent})",
            "[[variant]]",
            index,
            "model",
        )
        return None
    try:
        return cfg, resolve_model(cfg.model, cfg.model_args).model_dump(mode="json")
    except CnnlabError as exc:
        problems.add(f"{label}: {exc}", "[[variant]]", index, "model")
        return None


def _variant_index(variants: list[Variant], variant: Variant) -> int:
    """Which [[variant]] table of the file ``variant`` comes from."""
    names = list(dict.fromkeys(v.base for v in variants))
    return names.index(variant.base) if variant.base in names else 0
