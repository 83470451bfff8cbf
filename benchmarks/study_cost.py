"""What a study costs here, on 1 to 16 workers: `cnnlab run --dry-run`'s measurement
(cnnlab.study.run.study_cost: each variant set up as it will train, a few steps timed)
with the wall time for several pool sizes side by side.

    python benchmarks/study_cost.py studies/seed004-cifar10-17.toml [--threads 1] [--steps 4]
        [--epochs-scale F] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.study_cost import study_cost, wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of one run")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--epochs-scale", type=float)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    study = load_study(args.study, epochs_scale=args.epochs_scale, data_dir=args.data_dir)
    costs = study_cost(study, Path("/nonexistent-study-folder"), 1, args.threads, args.steps)
    print(f"{study.name}: {len(costs)} variants, {args.threads} thread(s) a run")
    print(f"{'variant':32} {'runs':>5} {'s/epoch':>8} {'epochs':>6} {'a run':>9}")
    for c in costs:
        print(f"{c.variant[:32]:32} {c.runs_todo:5d} {c.seconds_per_epoch:8.1f} "
              f"{c.epochs:6d} {c.run_seconds / 3600:8.2f}h")  # fmt: skip
    runs = [c.run_seconds for c in costs for _ in range(c.runs_todo)]
    one = sum(runs)
    print(f"whole study on one such worker: {one / 3600:,.2f} h")
    for workers in (2, 4, 8, 16):
        wall = wall_seconds(runs, workers)
        print(
            f"  on {workers:2d} workers: {wall / 3600:,.2f} h ({one / wall / workers:.0%} of {workers}x)"
        )


if __name__ == "__main__":
    main()
