"""Seeds until decided against a fixed number of seeds, by simulation.

One comparison (a variant against the baseline, Welch's test, alpha 0.05), per-seed
accuracies normal with sd 1, at true differences of 0, 0.5, 1 and 2 sd. The sequential
design looks at 3, 5, 8 and 12 seeds a variant (cnnlab's default looks) and stops at the
first look whose boundary is crossed (cnnlab.stats.sequential: O'Brien-Fleming-type and
Pocock-type spending). For each: the seeds a variant used on average, its power (the
chance of the right verdict; at 0, of a false one), and the seeds a fixed design needs
for the same power (Welch's test, noncentral t), with the saving. Also the power of
today's fixed 3 seeds.

    python benchmarks/sequential_seeds.py [--studies 20000]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats as sps

from cnnlab.stats.power import welch_power
from cnnlab.stats.sequential import SequentialDesign, look_schedule, sequential_holm

ALPHA = 0.05
DIFFERENCES = (0.0, 0.5, 1.0, 2.0)


def fixed_seeds_for(power: float, delta: float, limit: int = 200) -> int | None:
    """The fewest seeds a variant (both sides) whose fixed Welch test has ``power``."""
    for n in range(2, limit):
        if welch_power(delta, 1.0, n, 1.0, n, ALPHA) >= power:
            return n
    return None


def simulate(design: SequentialDesign, delta: float, studies: int, rng) -> tuple[float, float]:
    """(mean seeds a variant used, share of studies with a verdict in the true direction;
    at delta 0, with any verdict)."""
    n_max = design.looks[-1]
    a = rng.standard_normal((studies, n_max)) + delta
    b = rng.standard_normal((studies, n_max))
    p = np.stack(
        [sps.ttest_ind(a[:, :n], b[:, :n], equal_var=False, axis=1).pvalue for n in design.looks],
        axis=1,
    )
    used = np.empty(studies)
    right = np.zeros(studies, bool)
    for s in range(studies):
        (decision,) = sequential_holm([p[s].tolist()], design)
        k = decision.rejected_at
        used[s] = design.looks[-1 if k is None else k]
        if k is not None:
            n = design.looks[k]
            diff = a[s, :n].mean() - b[s, :n].mean()
            right[s] = diff > 0 or delta == 0
    return float(used.mean()), float(right.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    looks = look_schedule(3, 12)
    print(
        f"{args.studies} simulated studies a row; looks at {looks} seeds a variant; alpha {ALPHA}"
    )
    header = ("spending", "true diff", "seeds used", "power", "fixed, same power", "saving",
              "fixed 3: power")  # fmt: skip
    print(" | ".join(header))
    for spending in ("obrien-fleming", "pocock"):
        design = SequentialDesign(looks, ALPHA, spending)
        for delta in DIFFERENCES:
            used, power = simulate(design, delta, args.studies, rng)
            fixed = fixed_seeds_for(power, delta) if delta > 0 else None
            saving = f"{1 - used / fixed:+.0%}" if fixed else "—"
            today = welch_power(delta, 1.0, 3, 1.0, 3, ALPHA)
            print(
                f"{spending} | {delta:g} sd | {used:.2f} | {power:.3f} | "
                f"{fixed if fixed else '—'} | {saving} | {today:.3f}"
            )
    print("power at 0 sd: the false-positive rate; a fixed design's seeds are chosen before")
    print("the difference is known, so at 0 it has no 'same power' to match")


if __name__ == "__main__":
    main()
