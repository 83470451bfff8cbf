"""Study overhead: the share of a real `cnnlab run` spent outside training steps.

A small study (LeNet-5 and LeNet-5 + BN on real MNIST, 2 seeds x 2 epochs) is written to a
temporary folder and run exactly as a user runs it: a `cnnlab run` process, report
included. Its wall time is split with the figures cnnlab records: training steps (the
summaries' step_seconds), data loading (train_seconds - step_seconds), evaluation
(eval_seconds), the rest of each run (model set-up, checkpoints, metrics, plots and
database writes: each run's start-to-end time in the store minus its train and eval
time), and the rest of the process (start-up and imports, dataset load, planning, the
report). The floor under all of it, measured in the same run: a fresh interpreter's
imports of torch and torch._dynamo, which every study pays before its first step. With
--quick: one seed, on the first 1280 training and 1000 test images of real MNIST
(written as IDX files), so the fixed costs weigh more than in the full run.

It runs three times: one run after another in the `cnnlab run` process (`--workers 1`),
and with the default pool of worker processes (`--workers auto`), whose capacity is the
wall time times its workers: there a worker waiting (for its dataset, or for the
last run of the study to end) is overhead too. The pool runs twice: its workers forked
from the fork server that imported torch once (the default on a Linux CPU), and spawned as
fresh interpreters that each import it (`CNNLAB_WORKER_START=spawn`). Each says when
its first run started, from the command's start. Last, the forked pool again with the
test split evaluated at each run's end only (`evaluate = "end"`): what that setting saves.

    python benchmarks/overhead.py [--quick] [--device cuda]
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import Result, script_main

from cnnlab.data.datasets import load_dataset
from cnnlab.study.run.local_executor import auto_layout
from cnnlab.study.store.database import load_results

TARGET = 0.05  # at most this share of the wall time outside training steps

STUDY = """\
[study]
name = "overhead"
dataset = "mnist"
seeds = {seeds}
baseline = "lenet5"

[defaults]
model = "lenet5"
epochs = 2
batch_size = 128
device = "{device}"
evaluate = "{evaluate}"

[[variant]]
name = "lenet5"

[[variant]]
name = "lenet5-bn"
model_args = {{ batch_norm = true }}
"""


def write_idx(folder: Path, stem: str, array: np.ndarray) -> None:
    """An uncompressed IDX file, the format MNIST ships in (uint8 data)."""
    dims = array.shape
    header = struct.pack(f">I{len(dims)}I", 0x0800 + len(dims), *dims)
    (folder / stem).write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_subset(data_dir: Path | None, out: Path, n_train: int, n_test: int) -> Path:
    data = load_dataset("mnist", data_dir)
    folder = out / "mnist"
    folder.mkdir(parents=True)
    for prefix, split, n in (("train", data.train, n_train), ("t10k", data.test, n_test)):
        write_idx(folder, f"{prefix}-images-idx3-ubyte", split.images[:n, 0])
        write_idx(folder, f"{prefix}-labels-idx1-ubyte", split.labels[:n])
    return out


def run_study(
    folder: Path,
    data_dir: Path | None,
    device: torch.device,
    quick: bool,
    workers: str,
    env: dict[str, str],
    evaluate: str = "each-epoch",
) -> tuple[float, float]:
    """Wall seconds of `cnnlab run` on the study, as a user would start it, and the
    moment (time.time()) it started."""
    study = folder / "overhead.toml"
    seeds = "[0]" if quick else "[0, 1]"
    study.write_text(STUDY.format(seeds=seeds, device=device.type, evaluate=evaluate))
    command = [sys.executable, "-m", "cnnlab", "run", str(study), "--out", str(folder / "out")]
    command += ["--quiet", "--workers", workers]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    started, start = time.time(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env})
    return time.perf_counter() - start, started


def import_floor() -> float:
    """Seconds a fresh interpreter takes to import what training needs, best of 3: torch,
    torch._dynamo (which torch's optimizers import at their first step) and cnnlab's run
    code. Every study pays it before its first step (a pool's workers wait for it)."""
    code = "import torch, torch._dynamo, cnnlab.training.run"
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def measure(
    quick: bool = False, data_dir: Path | None = None, device: torch.device | None = None
) -> list[Result]:
    device = device or torch.device("cpu")
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    pool = auto_layout(None, None, os.cpu_count() or 1, gpus).workers
    results: list[Result] = []
    floor = import_floor()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if quick:
            data_dir = mnist_subset(data_dir, folder / "data", 1280, 1000)
        forked = {"CNNLAB_WORKER_START": "forkserver"}
        configurations = [
            ("one after another", 1, {}, "each-epoch"),
            (f"pool of {pool}, forked", pool, forked, "each-epoch"),
            (f"pool of {pool}, spawned", pool, {"CNNLAB_WORKER_START": "spawn"}, "each-epoch"),
            (f"pool of {pool}, forked, test split at the end", pool, forked, "end"),
        ]
        if device.type == "cuda":  # GPU workers are always spawned
            configurations = [configurations[0], (f"pool of {pool}", pool, {}, "each-epoch")]
        for n, (label, workers, env, evaluate) in enumerate(configurations):
            out = folder / f"configuration-{n}"
            out.mkdir()
            wall, started = run_study(out, data_dir, device, quick, str(workers), env, evaluate)
            runs = load_results(out / "out").runs
            results += shares(label, runs, wall, workers, quick)
            first = min(r.started_at for r in runs if r.started_at is not None) - started
            results += [
                Result(
                    "overhead", "  first run started after", first, wall, unit="s",
                    ratio=first / wall, percent=True,
                ),
                Result(
                    "overhead", "  the floor: importing torch", floor, wall, unit="s",
                    ratio=floor / wall, percent=True,
                    note="a fresh interpreter importing torch, torch._dynamo and cnnlab's run "
                    "code (best of 3): no study this long gets under this share",
                ),
            ]  # fmt: skip
    return results


def shares(label: str, runs: list, wall: float, workers: int, quick: bool) -> list[Result]:
    failed = [r for r in runs if r.summary is None]
    if failed:
        raise RuntimeError(f"overhead study: {len(failed)} runs failed: {failed[0].error}")
    summaries = [r.summary for r in runs if r.summary is not None]
    steps = sum(s.step_seconds for s in summaries)
    loading = sum(s.train_seconds - s.step_seconds for s in summaries)
    evaluation = sum(s.eval_seconds for s in summaries)
    in_runs = sum((r.ended_at or 0.0) - (r.started_at or 0.0) for r in runs)
    capacity = wall * workers
    parts = {
        "training steps": steps,
        "data loading (train - step seconds)": loading,
        "evaluation": evaluation,
        "runs' set-up, checkpoints, plots, database": in_runs - steps - loading - evaluation,
        "start-up, dataset load, planning, report"
        + (", workers waiting" if workers > 1 else ""): capacity - in_runs,
    }
    size = "1280 train images, 1 seed" if quick else "60000 train images, 2 seeds"
    results = [
        Result(
            "overhead",
            f"{label}: outside training steps",
            capacity - steps,
            capacity,
            unit="s",
            ratio=(capacity - steps) / capacity,
            percent=True,
            target=TARGET,
            at_most=True,
            note=f"`cnnlab run --workers {workers}`, {len(runs)} runs x 2 epochs of LeNet-5 "
            f"({size}); reference column: wall time x workers",
        )
    ]
    for name, seconds in parts.items():
        results.append(
            Result(
                "overhead", f"  {name}", seconds, capacity, unit="s", ratio=seconds / capacity,
                percent=True,
            )
        )  # fmt: skip
    return results


def main() -> None:
    script_main(measure, "study overhead: wall time outside training steps", __doc__)


if __name__ == "__main__":
    main()
