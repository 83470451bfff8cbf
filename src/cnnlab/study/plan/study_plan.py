"""A study's plan as a value: variants, seeds, claims, baseline and order, the runs they
expand to, and the rounds it grew by.

:func:`cnnlab.study.plan.study_file.load_study` builds a :class:`Study` once from the
file; nothing changes it afterwards. It grows only by a :class:`Round` (a search's
winners today), which :func:`~cnnlab.study.plan.study_file.add_round` turns into a new
plan. The plan, rounds included, is stored with the study (:meth:`Study.stored`) before
any of its runs trains, so a report reads it from the store and a rerun after a kill
resumes the same rounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnlab.claims.claim import Claim
from cnnlab.config.identity import RUN_ID_LENGTH, identity_hash, slugify
from cnnlab.config.schema import TrainConfig
from cnnlab.errors import ConfigError
from cnnlab.stats.sequential import SequentialDesign
from cnnlab.study.plan.nesting import epoch_families, nest_runs
from cnnlab.study.plan.planned_run import PlannedRun
from cnnlab.study.plan.search_table import SearchSpec

PLAN_FORMAT = "cnnlab-plan/1"


@dataclass(frozen=True)
class Variant:
    """One expanded variant: a [[variant]] at one grid point, with its settings merged."""

    name: str  # "7-layer" or, with a grid, "7-layer lr=0.1"
    base: str  # the [[variant]] name
    settings: dict[str, Any]  # [defaults] + variant + grid point, before the seed
    # The top-level keys the [[variant]] or the grid set (a bad value elsewhere is [defaults]').
    own: frozenset[str] = frozenset()
    point: dict[str, str] = field(default_factory=dict)  # grid label -> its value here

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "settings": self.settings,
            "own": sorted(self.own),
            "point": self.point,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Variant:
        return cls(
            d["name"], d["base"], dict(d["settings"]), frozenset(d.get("own") or ()),
            dict(d.get("point") or {}),
        )  # fmt: skip


@dataclass(frozen=True)
class Round:
    """How a plan grew after it was built, and why: ``variants`` added (a search's winners,
    trained over the study's seeds), or ``seeds`` added to the variants named in
    ``seeded`` (a look of seeds until decided), with what the report tells of it
    (``facts``)."""

    kind: str  # "search" or "seeds"
    reason: str
    variants: tuple[Variant, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    seeded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "variants": [v.to_dict() for v in self.variants],
            "facts": self.facts,
            "seeds": list(self.seeds),
            "seeded": list(self.seeded),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Round:
        variants = tuple(Variant.from_dict(v) for v in d.get("variants") or ())
        return cls(
            d["kind"], d["reason"], variants, dict(d.get("facts") or {}),
            tuple(d.get("seeds") or ()), tuple(d.get("seeded") or ()),
        )  # fmt: skip


@dataclass(frozen=True)
class Study:
    """A validated study file with the command line's overrides applied: a plan."""

    path: Path
    text: str
    name: str
    description: str
    dataset: str
    seeds: list[int]
    baseline: str  # an expanded variant name
    variants: list[Variant]
    claims: list[Claim]
    overrides: dict[str, Any]  # the command line's (dataset, seeds, epochs_scale, ...)
    search: SearchSpec | None = None
    file_variants: list[str] = field(default_factory=list)  # every [[variant]], file order
    declared_baseline: str | None = None  # [study] baseline as written
    rounds: tuple[Round, ...] = ()
    design: SequentialDesign | None = None  # seeds until decided
    seed_pool: tuple[int, ...] = ()  # with a design: every seed its looks may add, in order
    configs: Mapping[tuple[str, int], TrainConfig] = field(default_factory=dict, repr=False)
    identities: Mapping[tuple[str, int], dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def options(self) -> dict[str, Any]:
        """What the store records of this invocation: the overrides, and a search round's
        facts under "search" (the report's search section)."""
        out = dict(self.overrides)
        for r in self.rounds:
            if r.kind == "search":
                out["search"] = r.facts
        return out

    def seeds_of(self, variant: str) -> list[int]:
        """The study's seeds, then those the rounds of seeds until decided added to it."""
        extra = [s for r in self.rounds if variant in r.seeded for s in r.seeds]
        return [*self.seeds, *extra]

    @property
    def looks_done(self) -> int:
        """Looks of seeds until decided planned so far: the start, then one per round."""
        return 1 + sum(r.kind == "seeds" for r in self.rounds)

    def round_of(self, kind: str) -> Round | None:
        return next((r for r in self.rounds if r.kind == kind), None)

    def with_tensorboard(self) -> Study:
        """The same runs, also logged to TensorBoard (not part of a run's identity)."""
        configs = {k: c.model_copy(update={"tensorboard": True}) for k, c in self.configs.items()}
        return replace(self, configs=configs)

    def plan(self, out_dir: Path) -> list[PlannedRun]:
        """Every (variant, seed) run in file order (variants as written, seeds as listed,
        then the seeds rounds added)."""
        out_dir = Path(out_dir).absolute()
        runs = []
        for v in self.variants:
            for seed in self.seeds_of(v.name):
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
        return nest_runs(runs)

    def factors(self) -> dict[str, Any] | None:
        """The study as a factorial: its grid's keys (and the [[variant]]s, when several
        cross the grid) as factors, their levels, and each variant's cell; None without a
        grid."""
        if not any(v.point for v in self.variants):
            return None
        bases = list(dict.fromkeys(v.base for v in self.variants if v.point))
        names = list(next(v.point for v in self.variants if v.point))
        cells = {
            v.name: ([v.base] if len(bases) > 1 else []) + [v.point[n] for n in names]
            for v in self.variants
            if v.point
        }
        names = (["variant"] if len(bases) > 1 else []) + names
        levels = {n: list(dict.fromkeys(c[i] for c in cells.values())) for i, n in enumerate(names)}
        return {"names": names, "levels": levels, "cells": cells}

    def epoch_families(self) -> list[dict[str, Any]]:
        """Its variants that differ only in epochs: read from one run per seed, or why not
        (:mod:`cnnlab.study.plan.nesting`)."""
        return epoch_families(self.plan(Path(".")))

    def paired_families(self) -> list[list[str]]:
        """The variant families read from one run per seed: their runs pair by seed."""
        return [f["variants"] for f in self.epoch_families() if f["one_run"]]

    def stored(self) -> dict[str, Any]:
        """The plan as the store keeps it (``plan_json``): what a report needs of the file
        (variants and their order, baseline, claims) and the rounds, to resume them."""
        return {
            "format": PLAN_FORMAT,
            "variants": [{"name": v.name, "base": v.base} for v in self.variants],
            "file_variants": list(self.file_variants),
            "declared_baseline": self.declared_baseline,
            "baseline": self.baseline,
            "seeds": list(self.seeds),
            "claims": [c.model_dump(mode="json") for c in self.claims],
            "rounds": [r.to_dict() for r in self.rounds],
            "epoch_families": self.epoch_families(),
            "factors": self.factors(),
            "sequential": None if self.design is None else {
                "looks": list(self.design.looks), "alpha": self.design.alpha,
                "spending": self.design.spending, "seeds": list(self.seed_pool),
            },
        }  # fmt: skip


def chosen_variants(variants: list[Variant], names: Sequence[str], where: str) -> list[Variant]:
    """The variants named (expanded names or [[variant]] names), in file order."""
    known = {v.name for v in variants} | {v.base for v in variants}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        listed = ", ".join(dict.fromkeys(v.base for v in variants))
        what = f"no variant '{unknown[0]}'" if unknown else "--variants is empty"
        raise ConfigError(f"{where}: {what}; variants: {listed}")
    return [v for v in variants if v.name in names or v.base in names]


def baseline_of(name: str | None, variants: list[Variant], where: str) -> str:
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
