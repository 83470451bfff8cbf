"""Nested epochs: variants that differ only in ``epochs`` train once per seed.

With a schedule that does not depend on the run's length (constant, or steps at fixed
epochs) and no early stopping, a run of 30 epochs is exactly the first 30 epochs of a
run of 50 with the same settings and seed. So per seed only the longest of such runs
trains (the *trunk*, keeping a checkpoint at each shorter run's last epoch); each shorter
run (a *branch*) starts from that checkpoint, evaluates and writes its own run folder:
the same numbers, files and run id as if it had trained on its own, for a fraction of
the compute. Where the schedule depends on the length (cosine, linear, onecycle), the
variants train separately, and the plan says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cnnlab.config.identity import identity_hash
from cnnlab.records import kept_checkpoint
from cnnlab.study.plan.planned_run import PlannedRun


def _length_free_key(run: PlannedRun) -> str:
    """What a run is apart from its length (its seed included)."""
    settings = {k: v for k, v in run.identity["settings"].items() if k != "epochs"}
    return identity_hash({**run.identity, "settings": settings})


def nest_runs(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """``runs`` with each group of same-settings-but-epochs runs of one seed nested: the
    longest keeps the shorter ones' checkpoints, the shorter ones start from them."""
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        if run.config.shorter_runs_are_its_start:
            groups.setdefault(_length_free_key(run), []).append(run)
    nested = {r.run_id: r for r in runs}
    for members in groups.values():
        if len(members) < 2:
            continue
        trunk = max(members, key=lambda r: r.config.epochs)
        shorter = sorted({r.config.epochs for r in members if r is not trunk})
        keep = tuple(sorted({*trunk.config.keep_checkpoints, *shorter}))
        nested[trunk.run_id] = replace(
            trunk, config=trunk.config.model_copy(update={"keep_checkpoints": keep})
        )
        for r in members:
            if r is not trunk:
                kept = trunk.run_dir / kept_checkpoint(r.config.epochs)
                nested[r.run_id] = replace(r, start_from=kept, trunk=trunk.run_id)
    return [nested[r.run_id] for r in runs]


def epoch_families(runs: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """The variants that differ only in epochs, for the report: each family's variants
    (shortest first), whether they were read from one run per seed, and if not, why."""
    families: dict[str, dict[str, Any]] = {}
    first_seed = runs[0].seed if runs else None
    for run in runs:
        if run.seed != first_seed:
            continue
        family = families.setdefault(_length_free_key(run), {"runs": []})
        family["runs"].append(run)
    out = []
    for family in families.values():
        members = sorted(family["runs"], key=lambda r: r.config.epochs)
        if len(members) < 2:
            continue
        cfg = members[-1].config
        shared = cfg.shorter_runs_are_its_start
        why = ""
        if not shared:
            why = (
                f"the {cfg.schedule.name} schedule depends on the run's length"
                if cfg.schedule.depends_on_length
                else "early stopping may end each at another epoch"
            )
        out.append(
            {"variants": [r.variant for r in members], "one_run": shared, "why_separate": why}
        )
    return out
