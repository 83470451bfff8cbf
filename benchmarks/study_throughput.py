"""Study wall time: in-process against Ray, in one benchmark run, interleaved.

Runs one study (default: seed 001's LeNet-5 / MLP study on real MNIST, shortened with
--epochs-scale) as a fresh `cnnlab run` in each configuration, --repeat times,
alternating the order, and prints the best wall time of each with its ratio to
in-process. Ray's start-up (a local instance plus one worker actor with torch
imported) is timed on its own.

"two plain processes" is the ceiling any two-worker scheduler can reach on this
machine: the study's seeds split in two, each half an in-process `cnnlab run` at one
thread, both at once, no Ray. Ray's 2 x 1 figure is judged against it: on a CPU where
two threads already serve a small model well, no scheduler gets near 2x.

    python benchmarks/study_throughput.py --data-dir DIR [--epochs-scale 0.07]
        [--seeds 0,1] [--repeat 2] [--json OUT]

Needs Ray (pip install -e '.[ray]'). Loopback only: Ray is told to stay on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = "two plain processes x 1 thread"
ONE_BY_TWO = "Ray, 1 worker x 2 threads"
CONFIGS = {
    "in-process, 2 threads": [],
    "Ray, 2 workers x 1 thread": ["--executor", "ray", "--workers", "2", "--cpus-per-run", "1"],
    ONE_BY_TWO: ["--executor", "ray", "--workers", "1", "--cpus-per-run", "2"],
    PLAIN: [],
}
ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}

STARTUP = """
import time, os
t = time.perf_counter()
import ray
ray.init(num_cpus=1, include_dashboard=False, configure_logging=False, log_to_driver=False)
up = time.perf_counter() - t

@ray.remote(num_cpus=1)
class Worker:
    def __init__(self):
        import torch  # what a cnnlab worker imports first

    def ping(self):
        return 1

ray.get(Worker.remote().ping.remote())
print(up, time.perf_counter() - t)
ray.shutdown()
"""


def run_command(study: Path, out: str, seeds: str, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "cnnlab", "run", str(study), "--out", out]
    command += ["--epochs-scale", str(args.epochs_scale), "--seeds", seeds]
    return [*command, "--data-dir", str(args.data_dir), "--no-report", "--quiet"]


def run_once(study: Path, extra: list[str], args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = run_command(study, out, args.seeds, args) + extra
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, **ENV}, capture_output=True)
        return time.perf_counter() - started


def run_plain_pair(study: Path, args: argparse.Namespace) -> float:
    seeds = args.seeds.split(",")
    if len(seeds) < 2:
        raise SystemExit("the two-process ceiling needs at least two --seeds to split")
    halves = [",".join(seeds[: len(seeds) // 2]), ",".join(seeds[len(seeds) // 2 :])]
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                run_command(study, f"{out}/{i}", half, args),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, half in enumerate(halves)
        ]
        codes = [process.wait() for process in processes]
        if any(codes):
            raise SystemExit(f"a plain in-process run failed (exit {codes})")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--study", type=Path, default=ROOT / "studies/seed001-mnist-lenet-vs-mlp.toml"
    )
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("CNNLAB_DATA"))
    parser.add_argument("--epochs-scale", type=float, default=0.07)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--skip-one-by-two",
        action="store_true",
        help="leave out Ray 1 x 2 (the same work as in-process, on Ray: its fixed cost)",
    )
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir (or $CNNLAB_DATA) must name the folder holding mnist/")

    configs = [name for name in CONFIGS if not (args.skip_one_by_two and name == ONE_BY_TWO)]
    times: dict[str, list[float]] = {name: [] for name in configs}
    for round_ in range(args.repeat):
        order = configs if round_ % 2 == 0 else configs[::-1]
        for name in order:
            if name == PLAIN:
                seconds = run_plain_pair(args.study, args)
            else:
                seconds = run_once(args.study, CONFIGS[name], args)
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name}: {seconds:.1f} s", flush=True)
    startup = subprocess.run(
        [sys.executable, "-c", STARTUP],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    init_s, worker_s = map(float, startup.stdout.split())

    base = min(times["in-process, 2 threads"])
    print(f"\n{args.study.name}, --epochs-scale {args.epochs_scale}, seeds {args.seeds}")
    print(f"{'configuration':30} {'best wall':>10} {'all':>22} {'vs in-process':>14}")
    rows = []
    for name, values in times.items():
        best = min(values)
        rows.append({"config": name, "best_s": best, "all_s": values, "speedup": base / best})
        all_text = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:30} {best:9.1f}s {all_text:>22} {base / best:13.2f}x")
    ceiling = min(times[PLAIN])
    ray_pair = min(times["Ray, 2 workers x 1 thread"])
    print(f"Ray 2 x 1 reaches {ceiling / ray_pair:.0%} of the two-plain-process ceiling")
    print(f"Ray start-up: ray.init {init_s:.1f} s; first worker with torch ready {worker_s:.1f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "ray_init_s": init_s, "ray_worker_s": worker_s}, indent=2)
        )


if __name__ == "__main__":
    main()
