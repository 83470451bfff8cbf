"""How often the report's 95% intervals cover the truth, by simulation.

Simulated studies of n seeds a side, normal per-seed accuracies (sd 1): the mean's t
interval, Welch's interval of a difference and the interval of P(variant run beats
baseline run) (bootstrap, Newcombe's score interval where it collapses), at true
differences of 0, 1 and 2.5 sd. Prints the share covered; a well-calibrated 95%
interval covers 95%.

    python benchmarks/interval_coverage.py [--studies 1000] [--resamples 1000]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import ndtr

from cnnlab import stats
from cnnlab.stats.improvement import improvement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    print(f"{args.studies} simulated studies per row; share of 95% intervals covering the truth")
    print(
        f"{'n':>3} {'shift':>6} {'P true':>7} {'mean':>6} {'diff':>6} {'P(beats)':>9} {'score':>6}"
    )
    for n in (3, 5):
        for shift in (0.0, 1.0, 2.5):
            truth = float(ndtr(shift / np.sqrt(2)))
            mean = diff = prob = score = 0
            for _ in range(args.studies):
                x, y = rng.normal(shift, 1, n), rng.normal(0, 1, n)
                d, w = stats.describe(x), stats.welch(x, y)
                mean += d.ci_low <= shift <= d.ci_high
                diff += w.ci_low <= shift <= w.ci_high
                i = improvement(x, y, resamples=args.resamples, seed=int(rng.integers(1 << 30)))
                prob += i.ci_low <= truth <= i.ci_high
                score += i.method == "score"
            k = args.studies
            print(
                f"{n:>3} {shift:>6} {truth:>7.3f} {mean / k:>6.3f} {diff / k:>6.3f} "
                f"{prob / k:>9.3f} {score / k:>6.3f}"
            )
    print("score: share of studies whose P(beats) interval fell back to Newcombe's")


if __name__ == "__main__":
    main()
