"""The plan as the store holds it, and which runs a study folder's report shows: the
plan of the latest invocation, widened by the earlier invocations that ran other
variants of the same study.

Each invocation stores its plan (``plan_json``: the file's variants in order, the
declared baseline, the claims, the rounds); the report reads those from it and never
parses the study file. Invocations stored before plans were (schema 3 and older) have
only the file's text, which is parsed for them instead.

A study is often run a few variants at a time (``--variants A,B``, later ``--variants C``)
into one folder, because a whole study does not fit in one sitting. Those invocations
differ only in ``--variants``: the same file, seeds, scale and data, so a variant's runs
are the same runs whichever invocation planned them, and the folder's report covers
them all. An invocation with another file text or other options is another study of the
same name and is left out, as before.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.claims.claim import Claim, claims_of_text

PlanRow = tuple[str, str, int]  # run id, variant, seed


@dataclass
class ReportPlan:
    runs: list[PlanRow]
    variants: list[str]
    baseline: str | None


def plan_of(conn: sqlite3.Connection, study_id: int) -> list[PlanRow]:
    rows = conn.execute(
        "SELECT run_id, variant, seed FROM plan WHERE study_id = ? ORDER BY position",
        (study_id,),
    )
    return [(r["run_id"], r["variant"], r["seed"]) for r in rows]


def _options_but_variants(row: sqlite3.Row) -> dict[str, Any]:
    options = json.loads(row["options_json"])
    options.pop("variants", None)
    return options


def _stored(row: sqlite3.Row) -> dict[str, Any] | None:
    text = row["plan_json"] if "plan_json" in row.keys() else None  # noqa: SIM118 (Row)
    return json.loads(text) if text else None


def _file(file_text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(file_text)
    except tomllib.TOMLDecodeError:
        return {}


def _file_facts(row: sqlite3.Row) -> tuple[list[str], str | None]:
    """The [[variant]] names in the file's order, and the declared baseline."""
    plan = _stored(row)
    if plan is not None:
        return list(plan["file_variants"]), plan["declared_baseline"]
    file = _file(row["file_text"])  # stored before plans were
    entries = file.get("variant")
    entries = entries if isinstance(entries, list) else []
    written = [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    study = file.get("study")
    baseline = study.get("baseline") if isinstance(study, dict) else None
    return written, baseline if isinstance(baseline, str) else None


def stored_claims(row: sqlite3.Row) -> list[Claim]:
    """The claims of the invocation ``row``: its plan's, or its file's for an older one."""
    plan = _stored(row)
    if plan is None:
        return claims_of_text(row["file_text"])
    return [Claim.model_validate(c) for c in plan["claims"]]


def stored_sequential(row: sqlite3.Row) -> dict[str, Any] | None:
    """Seeds until decided, as the invocation ``row`` planned it: the design, and how many
    looks its rounds planned (the start and one per round of seeds)."""
    plan = _stored(row)
    design = None if plan is None else plan.get("sequential")
    if not design:
        return None
    looks = 1 + sum(r["kind"] == "seeds" for r in plan["rounds"])
    return {**design, "looks_planned": looks}


def stored_epoch_families(row: sqlite3.Row) -> list[dict[str, Any]]:
    """The plan's variants that differ only in epochs (see study.plan.nesting)."""
    plan = _stored(row)
    return list((plan or {}).get("epoch_families") or [])


def stored_factors(row: sqlite3.Row) -> dict[str, Any] | None:
    """The plan's grid as a factorial (see Study.factors)."""
    plan = _stored(row)
    return (plan or {}).get("factors") or None


def recorded_rounds(
    conn: sqlite3.Connection, name: str, file_path: str, file_text: str, overrides: Any
) -> list[dict[str, Any]]:
    """The rounds (``Round.to_dict``) of the latest invocation of this same study (name,
    file, path and overrides) that grew its plan by any: what a rerun after a kill resumes."""
    rows = conn.execute(
        "SELECT * FROM studies WHERE name = ? AND file_text = ? AND file_path = ? ORDER BY id DESC",
        (name, file_text, file_path),
    )
    wanted = json.loads(json.dumps(overrides))
    for row in rows:
        options = json.loads(row["options_json"])
        options.pop("search", None)
        plan = _stored(row)
        if options == wanted and plan is not None and plan["rounds"]:
            return list(plan["rounds"])
    return []


def _in_file_order(names: list[str], written: list[str]) -> list[str]:
    """``names`` by the [[variant]] each comes from ("a" or, on a grid, "a lr=0.1": the
    spec's naming), in the file's order; grid points of one variant, and names of no
    [[variant]], as first run."""

    def position(name: str) -> int:
        hits = [i for i, w in enumerate(written) if name == w or name.startswith(f"{w} ")]
        return max(hits, key=lambda i: len(written[i])) if hits else len(written)

    return sorted(names, key=position)


def report_plan(conn: sqlite3.Connection, latest: sqlite3.Row) -> ReportPlan:
    """The runs, variants (in the file's order) and baseline of the study as last run, with
    the variants its earlier ``--variants`` invocations ran added."""
    rows = conn.execute(
        "SELECT * FROM studies WHERE name = ? AND file_text = ? AND file_path = ? ORDER BY id",
        (latest["name"], latest["file_text"], latest["file_path"]),
    ).fetchall()
    wanted = _options_but_variants(latest)
    siblings = [r for r in rows if r["id"] == latest["id"] or _options_but_variants(r) == wanted]
    plans = {r["id"]: plan_of(conn, r["id"]) for r in siblings}
    newest_for: dict[str, int] = {}  # variant -> the newest invocation that planned it
    for row in siblings:
        for variant in [*json.loads(row["variants_json"]), *(v for _, v, _ in plans[row["id"]])]:
            newest_for[variant] = row["id"]
    written, declared = _file_facts(latest)
    order = _in_file_order(list(newest_for), written)
    runs = [
        entry for variant in order for entry in plans[newest_for[variant]] if entry[1] == variant
    ]
    return ReportPlan(runs, order, _baseline(latest, siblings, order, declared))


def _baseline(
    latest: sqlite3.Row, siblings: Sequence[sqlite3.Row], names: list[str], declared: str | None
) -> str | None:
    if declared in names:
        return declared
    # No (usable) declared one: the default of a run of the whole file, if there was one.
    whole = [r for r in siblings if json.loads(r["options_json"]).get("variants") is None]
    return whole[-1]["baseline"] if whole else latest["baseline"]
