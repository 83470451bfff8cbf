"""What a study will cost here, before it runs (`cnnlab run --dry-run`).

Each variant's first run is set up exactly as it will train (its data, input size,
precision, model and optimizer, at the threads each run gets), a few training steps are
timed after a warm-up, and seconds per epoch follow from its steps per epoch. Runs already
done cost nothing, a run read from a longer one (nested epochs) costs nothing of its own,
and the runs left are scheduled longest-first on the executor's workers for the wall
time. Evaluation and start-up add a few percent; seeds until decided are estimated at the
first look and at the most seeds their looks may add.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cnnlab.study.plan.study_plan import PlannedRun, Study
from cnnlab.study.store.database import DB_NAME, Store

WARMUP_STEPS = 2


@dataclass
class VariantCost:
    variant: str
    runs_todo: int
    runs_done: int
    seconds_per_epoch: float
    epochs: int

    @property
    def run_seconds(self) -> float:
        return self.seconds_per_epoch * self.epochs


def seconds_per_epoch(run: PlannedRun, threads: int, steps: int, cache) -> float:
    """Train ``steps`` batches of ``run`` as it will train, after a warm-up; scaled up."""
    import torch

    from cnnlab.evaluation.precision import configure_backends, resolve_precision
    from cnnlab.models.registry import preferred_input_size, resolve_model
    from cnnlab.training.loop import epoch_steps
    from cnnlab.training.prepare import make_loaders
    from cnnlab.training.trainer import build_trainer

    cfg = run.config
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        precision = resolve_precision(cfg.precision, cfg.device)
        configure_backends(precision, cfg.deterministic)
        spec = resolve_model(cfg.model, cfg.model_args)
        data = cache.dataset(cfg.dataset_ref, cfg.data_dir)
        loaders = make_loaders(cfg, data, precision, preferred_input_size(spec), cache)
        trainer = build_trainer(cfg, spec, loaders, precision)
        trainer.model.train()
        loaders.train.set_epoch(1)
        batches = iter(loaders.train)
        timed, started = 0, 0.0
        for i, (x, y) in enumerate(batches):
            if i == WARMUP_STEPS:
                started = time.perf_counter()
            _, loss = trainer.step(x, y)
            loss.item()  # the step's work is done (a device sync on a GPU)
            timed = i + 1 - WARMUP_STEPS
            if timed >= steps:
                break
        elapsed = time.perf_counter() - started if timed > 0 else 0.0
        return elapsed / max(1, timed) * epoch_steps(trainer)
    finally:
        torch.set_num_threads(before)


def wall_seconds(run_seconds: list[float], workers: int) -> float:
    """Longest first onto the least loaded worker: the pool's makespan."""
    loads = [0.0] * max(1, workers)
    for seconds in sorted(run_seconds, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def study_cost(
    study: Study, out_dir: Path, workers: int, threads: int, steps: int = 4
) -> list[VariantCost]:
    """Each variant's cost: its runs to do (not done, not read from a longer run)."""
    from cnnlab.data.datasets import DataCache

    planned = study.plan(Path(out_dir).absolute())
    statuses: dict[str, str] = {}
    if (Path(out_dir) / DB_NAME).is_file():
        with Store(Path(out_dir), create=False) as store:
            statuses = store.statuses()
    cache = DataCache()
    out: list[VariantCost] = []
    for variant in study.variant_names:
        runs = [r for r in planned if r.variant == variant]
        todo = [r for r in runs if statuses.get(r.run_id) != "done" and r.trunk is None]
        done = sum(statuses.get(r.run_id) == "done" for r in runs)
        per_epoch = seconds_per_epoch(runs[0], threads, steps, cache) if todo else 0.0
        out.append(VariantCost(variant, len(todo), done, per_epoch, runs[0].config.epochs))
    return out
