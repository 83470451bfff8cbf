"""What a study costs: each variant's training speed measured here, times its epochs.

For every variant of a study file (first seed), builds its model, times --steps
training steps (forward, loss, backward, optimizer step) at the study's batch size on
random images of the dataset's shape, and turns that into seconds per epoch and
into the whole study's training time on 1, 2, 4 and 8 workers like the one measured
(runs are independent, so N workers divide the total until a worker is left with a
single run). Evaluation and data loading are not included (a few percent here).

    python benchmarks/study_cost.py studies/seed004-cifar10-17.toml [--train-images 50000]
        [--threads 1] [--device cpu|cuda] [--steps 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from cnnlab.models.registry import build_model, resolve_model
from cnnlab.study.plan.study_file import load_study

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}  # else 3x32x32 (CIFAR, SVHN)


def images_per_second(cfg, shape, classes: int, steps: int, device: str) -> float:
    model = build_model(resolve_model(cfg.model, cfg.model_args), shape, classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(cfg.batch_size, *shape, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.batch_size,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    step()  # warm-up: allocations, kernel choice
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * cfg.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", type=Path)
    parser.add_argument("--train-images", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one run's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    study = load_study(args.study)
    shape = SHAPES.get(study.dataset, (3, 32, 32))
    seeds = len(study.seeds)
    first = {}
    for run in study.plan(Path("/nonexistent")):
        first.setdefault(run.variant, run.config)
    total = 0.0
    runs: list[float] = []
    print(f"{study.name}: {len(first)} variants x {seeds} seeds, {args.train_images} images")
    print(f"{'variant':28} {'img/s':>8} {'s/epoch':>8} {'epochs':>6} {'run':>9}")
    for name, cfg in first.items():
        speed = images_per_second(cfg, shape, 10, args.steps, args.device)
        per_epoch = args.train_images / speed
        run_s = per_epoch * cfg.epochs
        runs += [run_s] * seeds
        total += run_s * seeds
        print(f"{name:28} {speed:8.0f} {per_epoch:8.0f} {cfg.epochs:6d} {run_s / 3600:8.1f}h")
    print(
        f"whole study, one worker ({args.threads} thread(s), {args.device}): {total / 3600:,.0f} h"
    )
    for workers in (2, 4, 8, 16):
        # Longest-first onto the least loaded worker: a fair estimate of a pool's makespan.
        loads = [0.0] * workers
        for seconds in sorted(runs, reverse=True):
            loads[loads.index(min(loads))] += seconds
        print(f"  on {workers:2d} such workers: {max(loads) / 3600:,.0f} h "
              f"({total / max(loads) / workers:.0%} of the ideal {workers}x)")  # fmt: skip


if __name__ == "__main__":
    main()
