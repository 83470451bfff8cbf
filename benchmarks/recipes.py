"""The CIFAR-10 fast recipe against its Muon variants, side by side in one run.

Runs the study itself, `cnnlab run studies/cifar10-fast.toml --variants
fast,fast-muon,fast-muon-10`, so every variant's seeds share the worker pool and the
machine's mood, at the precision asked (fp32 by default, as the recipe's 10-minute target
is set for a CPU without native bf16). Reports each variant's test accuracy (mean and
standard deviation over the seeds) and mean training seconds (the runs' own clock), and
each Muon variant's against fast's. With --quick: seed 0 and a fifth of each variant's
epochs (`--epochs-scale 0.2`: 1, 1 and 2).

    python benchmarks/recipes.py [--quick] [--seeds 0,1,2] [--precision fp32|auto|bf16]
        [--variants fast,fast-muon]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Result, add_common_args, run_main

from cnnlab.study.store.database import load_results

STUDY = Path(__file__).resolve().parents[1] / "studies" / "cifar10-fast.toml"
VARIANTS = ("fast", "fast-muon", "fast-muon-10")  # the first is the reference


def study_copy(folder: Path, precision: str) -> Path:
    """The study with its model paths made absolute and ``precision`` in its defaults."""
    models = STUDY.parent.parent / "models"
    text = STUDY.read_text().replace('"../models/', f'"{models.as_posix()}/')
    text = text.replace("[defaults]\n", f'[defaults]\nprecision = "{precision}"\n', 1)
    copy = folder / STUDY.name
    copy.write_text(text)
    return copy


def measure(
    quick: bool = False,
    data_dir: Path | None = None,
    device=None,
    seeds: str = "0,1,2",
    precision: str = "fp32",
    variants: tuple[str, ...] = VARIANTS,
) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command = [sys.executable, "-m", "cnnlab", "run", str(study_copy(folder, precision))]
        command += ["--variants", ",".join(variants), "--out", str(folder / "out"), "--quiet"]
        command += ["--seeds", "0" if quick else seeds, "--no-report"]
        command += ["--epochs-scale", "0.2"] if quick else []
        command += ["--data-dir", str(data_dir)] if data_dir is not None else []
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        runs = load_results(folder / "out").runs
    accuracy: dict[str, list[float]] = {v: [] for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for run in runs:
        if run.summary is None:
            raise RuntimeError(f"{run.variant} seed {run.seed} failed: {run.error}")
        accuracy[run.variant].append(run.summary.final.test_acc)
        seconds[run.variant].append(run.summary.train_seconds)
    note = f"{len(accuracy[variants[0]])} seed(s), {precision}" + (
        ", epochs x 0.2" if quick else ""
    )
    return results_of(variants, accuracy, seconds, note)


def results_of(
    variants: tuple[str, ...],
    accuracy: dict[str, list[float]],
    seconds: dict[str, list[float]],
    note: str,
) -> list[Result]:
    """Each variant's accuracy, then each later one's gain and time against the first."""
    results = []
    for variant in variants:
        spread = statistics.stdev(accuracy[variant]) if len(accuracy[variant]) > 1 else 0.0
        results.append(
            Result(
                "recipes", f"{variant}: test accuracy", statistics.mean(accuracy[variant]),
                unit="acc", note=f"{note}; sd {100 * spread:.2f} points",
            )
        )  # fmt: skip
    reference = variants[0]
    for variant in variants[1:]:
        gain = 100 * (statistics.mean(accuracy[variant]) - statistics.mean(accuracy[reference]))
        results.append(
            Result("recipes", f"{variant} - {reference}", gain, unit="points", note=note)
        )
        results.append(
            Result(
                "recipes", f"training time, {variant} vs {reference}",
                statistics.mean(seconds[variant]), statistics.mean(seconds[reference]),
                unit="s", note=f"{note}; mean of the runs' own training clocks",
            )
        )  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--seeds", default="0,1,2", help="seeds of each variant (default 0,1,2)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "auto", "bf16"])
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="the study's variants to run, the reference first (default: %(default)s)",
    )
    args = parser.parse_args()
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if len(variants) < 2:
        parser.error("--variants needs the reference and at least one variant to compare")
    title = f"CIFAR-10 fast recipe: {variants[0]} vs {', '.join(variants[1:])}"
    run_main(measure, title, args, seeds=args.seeds, precision=args.precision, variants=variants)


if __name__ == "__main__":
    main()
