"""Seeds until decided, as rounds of the plan: after each look, the next look's seeds for
the variants of what is still open (:mod:`cnnlab.claims.sequential_verdicts`)."""

from __future__ import annotations

from collections.abc import Mapping

from cnnlab.claims.claim import Claim
from cnnlab.claims.sequential_verdicts import (
    SequentialVerdict,
    family,
    judge_sequential,
    variants_needing_seeds,
)
from cnnlab.stats.formatting import counted
from cnnlab.study.plan.study_plan import Round, Study

BySeed = Mapping[str, Mapping[int, float]]  # variant -> seed -> final test accuracy


def hypotheses(study: Study) -> list[Claim]:
    """The family the looks decide: the claims whose variants are all planned here, and
    each variant's comparison with the baseline."""
    names = study.variant_names
    claims = [c for c in study.claims if all(v in names for v in c.variants)]
    return family(claims, names, study.baseline)


def look_verdicts(study: Study, by_seed: BySeed) -> list[SequentialVerdict]:
    """The family after the looks planned so far."""
    assert study.design is not None
    return judge_sequential(
        hypotheses(study), by_seed, study.seed_pool, study.design, study.looks_done,
        study.paired_families(),
    )  # fmt: skip


def next_round(study: Study, by_seed: BySeed) -> Round | None:
    """The next look's seeds for the variants of the open hypotheses; None when every one is
    decided or the last look is done."""
    design = study.design
    if design is None or study.looks_done >= len(design.looks):
        return None
    verdicts = look_verdicts(study, by_seed)
    variants = variants_needing_seeds(verdicts)
    if not variants:
        return None
    k = study.looks_done
    seeds = tuple(study.seed_pool[design.looks[k - 1] : design.looks[k]])
    still = [v.claim.says for v in verdicts if not v.decided]
    decided = len(verdicts) - len(still)
    tested = "claim or comparison" if len(verdicts) == 1 else "claims and comparisons"
    reason = (
        f"look {k} of {len(design.looks)} ({design.looks[k - 1]} seeds): {decided} of "
        f"{len(verdicts)} {tested} decided; {counted(len(variants), 'variant')} "
        f"of the open ones get {counted(len(seeds), 'more seed')}"
    )
    facts = {"look": k, "open": still, "decided": decided}
    return Round("seeds", reason, facts=facts, seeds=seeds, seeded=tuple(variants))
