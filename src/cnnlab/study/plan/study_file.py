"""Study files: parse, validate and expand a study into self-contained planned runs.

A study file is TOML::

    [study]                       name, dataset, seeds; optional description, baseline
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cnnlab.claims.claim import Claim, parse_claims
from cnnlab.config.files import read_toml_text
from cnnlab.config.identity import (
    RUN_ID_LENGTH,
    SETTINGS_ADDED_SINCE_V1,
    identity_hash,
    run_identity,
    slugify,
)
from cnnlab.config.problems import Problems, describe_error
from cnnlab.config.schema import TrainConfig, merge_settings
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.study.plan.checks import (
    check_defaults,
    check_grid,
    check_settings,
    file_problems,
    variant_dataset_problem,
)
from cnnlab.study.plan.expand import (
    absolute_dataset,
    absolute_value,
    baseline_of,
    chosen_variants,
    format_value,
    grid_labels,
    is_model_path,
    scaled_config,
    set_dotted,
)
from cnnlab.study.plan.search_table import SearchSpec, parse_search

__all__ = [
    "SETTINGS_ADDED_SINCE_V1",
    "PlannedRun",
    "Study",
    "Variant",
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
    variant: list[dict[str, Any]] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    claim: list[Any] = Field(default_factory=list)  # checked by cnnlab.claims.claim
    search: dict[str, Any] | None = None  # checked by cnnlab.study.plan.search_table


@dataclass(frozen=True)
class Variant:
    """One expanded variant: a [[variant]] at one grid point, with its settings merged."""

    name: str  # "7-layer" or, with a grid, "7-layer lr=0.1"
    base: str  # the [[variant]] name
    settings: dict[str, Any]  # [defaults] + variant + grid point, before the seed
    # The top-level keys the [[variant]] or the grid set (a bad value elsewhere is [defaults]').
    own: frozenset[str] = frozenset()


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
    claims: list[Claim]
    options: dict[str, Any]  # the overrides, as recorded in the store
    search: SearchSpec | None = None
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
    parsed = _parse_file(raw, problems)
    section = parsed.study

    seed_list = list(seeds if seeds is not None else section.seeds)
    if seeds is not None and not seed_list:
        problems.add("--seeds is empty; give at least one seed, e.g. 0,1,2")
    if len(set(seed_list)) != len(seed_list):
        dup = sorted({s for s in seed_list if seed_list.count(s) > 1})
        problems.add(
            f"seed {dup[0]} is listed twice; each seed runs once per variant", "[study]", 0, "seeds"
        )
    if epochs_scale is not None and not (math.isfinite(epochs_scale) and epochs_scale > 0):
        problems.add(f"--epochs-scale {epochs_scale}: must be a positive number, e.g. 0.2")
    study_dataset = section.dataset
    try:
        if dataset is not None:
            study_dataset = absolute_dataset(dataset, "--dataset", Path.cwd())
        else:
            study_dataset = absolute_dataset(section.dataset, "[study] dataset", base)
    except ConfigError as exc:
        problems.add(str(exc), "[study]", 0, "dataset")

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

    all_variants = _expand(bases, grid, base, problems, own_keys)
    if not all_variants:
        problems.raise_if_any()
    claims = parse_claims(parsed.claim, [v.name for v in all_variants], problems)
    baseline = ""
    try:
        baseline = baseline_of(section.baseline, all_variants, where)
        if variants is not None:
            chosen = chosen_variants(all_variants, variants, where)
            baseline = baseline if any(v.name == baseline for v in chosen) else chosen[0].name
            all_variants = chosen
    except ConfigError as exc:
        problems.add(str(exc).removeprefix(f"{where}: "), "[study]", 0, "baseline")
    base_settings = next((v.settings for v in all_variants if v.name == baseline), {})
    search = parse_search(parsed.search, base_settings, problems)
    if search is not None and search.confirm_seeds and seeds is None:
        seed_list = list(search.confirm_seeds)
    study = Study(
        path=path,
        text=text,
        name=section.name,
        description=section.description,
        dataset=study_dataset,
        seeds=seed_list,
        baseline=baseline,
        variants=all_variants,
        claims=claims,
        search=search,
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
    resolve_runs(study, epochs_scale, data_dir, problems)
    return study


def _parse_file(raw: dict[str, Any], problems: Problems) -> StudyFile:
    if "variant" in raw and not isinstance(raw["variant"], list):
        problems.add("write each variant as a [[variant]] table (double brackets)")
        problems.raise_if_any()
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as exc:
        file_problems(exc, problems, {"study": StudySection})
        problems.raise_if_any()
        raise  # not reached: there was a problem


def _absolute_paths(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    """``settings`` with their model file and data_dir paths made absolute."""
    return {k: absolute_value(k, v, base) for k, v in settings.items()}


def _expand(
    bases: list[tuple[str, dict[str, Any]]],
    grid: dict[str, list[Any]],
    base: Path,
    problems: Problems,
    own_keys: dict[str, set[str]],
) -> list[Variant]:
    """Every [[variant]] at every grid point, named "<variant> <key>=<value> ..."."""
    out: list[Variant] = []
    labels = grid_labels(list(grid))
    for name, settings in bases:
        for point in itertools.product(*grid.values()) if grid else [()]:
            merged = settings
            suffix = []
            for (key, value), label in zip(zip(grid, point, strict=True), labels, strict=True):
                merged = set_dotted(merged, key, absolute_value(key, value, base))
                suffix.append(f"{label}={format_value(value)}")
            full = " ".join([name, *suffix])
            if any(v.name == full for v in out):
                problems.add(
                    f"variant name '{full}' comes out twice from the grid; make the variant "
                    "names or the grid values differ"
                )
                continue
            own = frozenset(own_keys[name]) | {k.split(".")[0] for k in grid}
            out.append(Variant(name=full, base=name, settings=merged, own=own))
    return out


def resolve_runs(
    study: Study, epochs_scale: float | None, data_dir: Path | None, problems: Problems
) -> None:
    """Validate each variant once (every problem of every variant at once), resolve its
    model, then derive each seed's config and identity; reject identical variants."""
    from cnnlab.models.registry import resolve_model

    resolved: dict[str, TrainConfig] = {}
    specs: dict[str, dict[str, Any]] = {}
    for v in study.variants:
        label = f"variant '{v.name}'"
        values = dict(v.settings, dataset=study.dataset, seed=(study.seeds or [0])[0])
        if "dataset" in v.settings:  # digits-wild training options only (checks.py)
            if why := variant_dataset_problem(study.dataset, v.settings["dataset"]):
                problems.add(f"{label}: {why}", "[[variant]]", _variant_index(study, v), "dataset")
            values["dataset"] = v.settings["dataset"] if why is None else study.dataset
        if data_dir is not None:
            values["data_dir"] = str(Path(data_dir).expanduser().resolve())
        index = _variant_index(study, v)
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
            continue
        if is_model_path(cfg.model) and not Path(cfg.model).is_file():
            problems.add(
                f"{label}: model file not found: {cfg.model} (model paths are relative to "
                f"the study file's folder, {study.path.absolute().parent})",
                "[[variant]]",
                index,
                "model",
            )
            continue
        try:
            specs[v.name] = resolve_model(cfg.model, cfg.model_args).model_dump(mode="json")
        except CnnlabError as exc:
            problems.add(f"{label}: {exc}", "[[variant]]", index, "model")
            continue
        resolved[v.name] = scaled_config(cfg, epochs_scale) if epochs_scale is not None else cfg
    problems.raise_if_any()

    seen: dict[str, str] = {}
    for v in study.variants:
        for seed in study.seeds:
            cfg = resolved[v.name].model_copy(update={"seed": seed})
            identity = run_identity(cfg.model_dump(mode="json"), specs[v.name])
            digest = identity_hash(identity)
            if digest in seen and seen[digest] != v.name:
                raise ConfigError(
                    f"{study.path}: variants '{seen[digest]}' and '{v.name}' have exactly the "
                    "same settings; remove one or make them differ"
                )
            seen[digest] = v.name
            study.configs[(v.name, seed)] = cfg
            study.identities[(v.name, seed)] = identity


def _variant_index(study: Study, variant: Variant) -> int:
    """Which [[variant]] table of the file ``variant`` comes from."""
    names = list(dict.fromkeys(v.base for v in study.variants))
    return names.index(variant.base) if variant.base in names else 0
