"""Every benchmark in one command, one table at the end.

Runs loader, augment (when kornia is installed), train, precision, flops, evaluation
and overhead in this process, one after another, each measuring cnnlab and its
reference side by side; then prints the machine and one table of every result.
A benchmark that fails becomes a row saying so; the others still run. On the 2-core
development CPU --quick takes a few minutes (LeNet-5 cases only for training; the
VGG-style net at small sizes: measured 112-231 s). The full run took 17 minutes there
(2026-11-23), 10.6 of them in the CIFAR-10 training cases.

    python benchmarks/all.py [--quick] [--data-dir DIR] [--device auto|cpu|cuda]
        [--json OUT] [--only train,flops]
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback

from common import Result, add_common_args, device_of, machine_info, report

BENCHMARKS = ["loader", "augment", "train", "precision", "flops", "evaluation", "overhead"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--only", default=None, help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    device = device_of(args.device)
    info = machine_info(device)
    results: list[Result] = []
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for name in names:
        print(f"== {name}", flush=True)
        began = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # augment compares with kornia, an optional extra
            results.append(
                Result(name, "skipped", note=f"needs {exc.name}: pip install -e '.[bench]'")
            )
            continue
        try:
            results += module.measure(quick=args.quick, data_dir=args.data_dir, device=device)
        except Exception as exc:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            results.append(Result(name, "failed", note=f"{type(exc).__name__}: {exc}"))
        seconds[name] = time.perf_counter() - began
        print(f"   {name}: {seconds[name]:.0f} s", flush=True)
    title = "cnnlab benchmarks" + (" (--quick)" if args.quick else "")
    total = time.perf_counter() - start
    report(results, title, info, args.json, total, {"seconds_per_benchmark": seconds})
    print("seconds per benchmark: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
