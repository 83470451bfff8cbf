"""Study wall time: in process, local worker processes and Ray, in one benchmark run.

Runs one study (default: seed 001's LeNet-5 / MLP / LeNet-5 + BN study on real MNIST,
shortened with --epochs-scale) as a fresh `cnnlab run` in each configuration,
--repeat times, alternating the order, and prints the best wall time of each with its
ratio to in-process (two threads, one run after another: cnnlab before the local pool).
The start-up of a local pool (two spawned workers with torch imported) and of Ray (a
local instance plus one worker actor) are timed on their own. --main-job also times the
main job (studies/quick-fashion.toml as scripts/main.sh runs it) in process and with
the default pool, start-up included.

"two plain processes" is the ceiling any two-worker scheduler can reach on this
machine: the study's seeds split in two, each half an in-process `cnnlab run` at one
thread, both at once. The pool's and Ray's 2 x 1 figures are judged against it: on a CPU
where two threads already serve a small model well, no scheduler gets near 2x.

    python benchmarks/study_throughput.py --data-dir DIR [--epochs-scale 0.2]
        [--seeds 0,1] [--repeat 2] [--main-job] [--skip-ray] [--json OUT]

Ray needs pip install -e '.[ray]'; it is told to stay on 127.0.0.1.
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
IN_PROCESS = "in-process, 2 threads"
LOCAL = "local, 2 workers x 1 thread"
LOCAL_ONE_BY_TWO = "local, 1 worker x 2 threads"
RAY = "Ray, 2 workers x 1 thread"
ONE_BY_TWO = "Ray, 1 worker x 2 threads"
CONFIGS = {
    IN_PROCESS: ["--workers", "1"],
    LOCAL: ["--workers", "2", "--threads-per-run", "1"],
    LOCAL_ONE_BY_TWO: [
        "--executor",
        "local",
        "--workers",
        "1",
        "--threads-per-run",
        "2",
    ],
    RAY: ["--executor", "ray", "--workers", "2", "--threads-per-run", "1"],
    ONE_BY_TWO: ["--executor", "ray", "--workers", "1", "--threads-per-run", "2"],
    PLAIN: ["--workers", "1", "--threads-per-run", "1"],
}

# Short keys for --only: the names above hold commas.
KEYS = {
    "in-process": IN_PROCESS,
    "local-2x1": LOCAL,
    "local-1x2": LOCAL_ONE_BY_TWO,
    "ray-2x1": RAY,
    "ray-1x2": ONE_BY_TWO,
    "plain": PLAIN,
}

POOL_STARTUP = """
import time
from cnnlab.study.run.local_pool import LocalPool
t = time.perf_counter()
pool = LocalPool(threads=1)
for worker in pool.start(2):
    worker.conn.recv()  # its first message: ready, torch and cnnlab imported
print(time.perf_counter() - t)
pool.close()
"""
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
                run_command(study, f"{out}/{i}", half, args) + CONFIGS[PLAIN],
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
    parser.add_argument("--epochs-scale", type=float, default=0.2)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--main-job", action="store_true", help="also time the main job")
    parser.add_argument("--skip-ray", action="store_true", help="leave out both Ray figures")
    parser.add_argument(
        "--only",
        help=f"comma-separated configurations to time, of {', '.join(KEYS)} (e.g. "
        "local-2x1,plain); in-process is always timed, the ratios' base",
    )
    parser.add_argument(
        "--skip-one-by-two",
        action="store_true",
        help="leave out Ray 1 x 2 (the same work as in-process, on Ray: its fixed cost)",
    )
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir (or $CNNLAB_DATA) must name the folder holding mnist/")

    skipped = {ONE_BY_TWO} if args.skip_one_by_two else set()
    if args.skip_ray:
        skipped |= {RAY, ONE_BY_TWO}
    wanted = only_configs(args.only, parser) if args.only else set(CONFIGS)
    configs = [name for name in CONFIGS if name not in skipped and name in wanted | {IN_PROCESS}]
    times: dict[str, list[float]] = {name: [] for name in configs}
    main_job: dict[str, list[float]] = {IN_PROCESS: [], "default (auto)": []}
    for round_ in range(args.repeat):
        order = configs if round_ % 2 == 0 else configs[::-1]
        for name in order:
            if name == PLAIN:
                seconds = run_plain_pair(args.study, args)
            else:
                seconds = run_once(args.study, CONFIGS[name], args)
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name}: {seconds:.1f} s", flush=True)
        for name in list(main_job)[:: 1 if round_ % 2 == 0 else -1] if args.main_job else []:
            seconds = run_main_job(["--workers", "1"] if name == IN_PROCESS else [], args)
            main_job[name].append(seconds)
            print(f"round {round_ + 1}: main job, {name}: {seconds:.1f} s", flush=True)
    report(args, times, main_job, startup_seconds(args))


def only_configs(text: str, parser: argparse.ArgumentParser) -> set[str]:
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in KEYS]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(KEYS)}")
    return {KEYS[key] for key in keys}


def run_main_job(extra: list[str], args: argparse.Namespace) -> float:
    """The main job as scripts/main.sh runs it: its own seeds and epochs, until decided."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "cnnlab", "run", str(ROOT / "studies/quick-fashion.toml")]
        command += ["--out", out, "--until-decided", "--quiet", *extra]
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, **ENV}, capture_output=True)
        return time.perf_counter() - started


def startup_seconds(args: argparse.Namespace) -> dict[str, float]:
    def probe(code: str) -> list[float]:
        done = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True,
            env={**os.environ, **ENV},
        )  # fmt: skip
        return [float(x) for x in done.stdout.split()]

    out = {"local_pool_s": probe(POOL_STARTUP)[0]}
    if not args.skip_ray:
        out["ray_init_s"], out["ray_worker_s"] = probe(STARTUP)
    return out


def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    main_job: dict[str, list[float]],
    startup: dict[str, float],
) -> None:
    base = min(times[IN_PROCESS])
    print(f"\n{args.study.name}, --epochs-scale {args.epochs_scale}, seeds {args.seeds}")
    print(f"{'configuration':30} {'best wall':>10} {'all':>22} {'vs in-process':>14}")
    rows = []
    for name, values in times.items():
        best = min(values)
        rows.append({"config": name, "best_s": best, "all_s": values, "speedup": base / best})
        all_text = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:30} {best:9.1f}s {all_text:>22} {base / best:13.2f}x")
    ceiling = min(times[PLAIN]) if PLAIN in times else None
    for name in (LOCAL, RAY):
        if name in times and ceiling is not None:
            print(
                f"{name} reaches {ceiling / min(times[name]):.0%} of the two-plain-process ceiling"
            )
    print(f"local pool start-up: two workers ready in {startup['local_pool_s']:.1f} s")
    if "ray_init_s" in startup:
        print(
            f"Ray start-up: ray.init {startup['ray_init_s']:.1f} s; first worker with torch "
            f"ready {startup['ray_worker_s']:.1f} s"
        )
    if main_job[IN_PROCESS]:
        before, after = min(main_job[IN_PROCESS]), min(main_job["default (auto)"])
        print(
            f"main job (quick-fashion, start-up included): in process {before:.1f} s, "
            f"default pool {after:.1f} s: {before / after:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "main_job": main_job, **startup}, indent=2))


if __name__ == "__main__":
    main()
