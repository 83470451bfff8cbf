"""Precision and memory layout: images/s and test accuracy of each setting, side by side.

This is the evidence behind `--precision auto` and the `compile` default: fp32 NCHW (the
exact path, the reference), fp32 channels_last, bf16 autocast NCHW and bf16 channels_last
(AMP on CUDA), then torch.compile on top of the fastest. Each is a short real run of
LeNet-5 on MNIST through ``cnnlab.training.loop.train``: images/s of its second epoch (the
first holds the warm-up, and compilation) and its final test accuracy. A setting that no
TrainConfig value selects on this device is forced into ``train()`` (its precision
resolver patched) and marked so. Without --quick a step loop on synthetic batches adds
the VGG-style net, where the layout matters most (rounds interleave the settings).

    python benchmarks/precision.py [--quick] [--device cuda] [--models vgg13-leaky]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from common import Result, add_common_args, run_main, sync

from cnnlab.config.schema import make_config
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import load_dataset
from cnnlab.evaluation.precision import Precision, cuda_has_native_bf16, resolve_precision
from cnnlab.models.registry import build_model, resolve_model
from cnnlab.records import EPOCH_COLUMNS
from cnnlab.training import loop


@dataclass(frozen=True)
class Setting:
    label: str
    precision: Precision
    config_name: str | None  # the TrainConfig precision that selects it here, if any


def settings(device: torch.device) -> list[Setting]:
    half = torch.bfloat16
    if device.type == "cuda" and not cuda_has_native_bf16(device):
        half = torch.float16
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[half]
    out = []
    for dtype, channels_last in ((None, False), (None, True), (half, False), (half, True)):
        p = Precision(device, dtype, channels_last, dtype is torch.float16)
        label = f"{name if dtype else 'fp32'} {'channels_last' if channels_last else 'NCHW'}"
        out.append(Setting(label, p, config_name_for(p)))
    return out


def config_name_for(p: Precision) -> str | None:
    for name in ("fp32", "auto", "bf16", "fp16"):
        if resolve_precision(name, p.device.type) == p:
            return name
    return None


def real_run(
    setting: Setting,
    data: DatasetArrays,
    device: torch.device,
    compile: bool = False,
    cold_cache: bool = False,
) -> dict[str, Any]:
    """A 2-epoch LeNet-5 run: the summary plus the per-epoch rows of metrics.csv.

    ``cold_cache``: compile into an empty inductor cache, as a first run ever does."""
    cfg = make_config(
        {
            "dataset": "mnist",
            "model": "lenet5",
            "epochs": 2,
            "batch_size": 128,
            "optimizer": {"name": "adam", "lr": 1e-3},
            "precision": setting.config_name or "fp32",
            "device": device.type,
            "compile": compile,
        }
    )
    forced = (
        mock.patch.object(loop, "resolve_precision", lambda *_, **__: setting.precision)
        if setting.config_name is None
        else nullcontext()
    )
    with tempfile.TemporaryDirectory() as out, forced:
        cache: Any = nullcontext()
        if cold_cache:  # torch-internal, but the one switch that empties every cache level
            from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

            cache = temporary_cache_dir(str(Path(out) / "inductor"))
        with cache:
            record = loop.train(cfg, Path(out), data=data)
        summary = record.summary.to_dict()
        summary["history"] = [
            {k: float(v or 0) for k, v in r.to_dict().items() if k in EPOCH_COLUMNS}
            for r in record.history
        ]
    assert summary["precision"] == setting.precision.label, summary["precision"]
    return summary


def how_selected(setting: Setting) -> str:
    if setting.config_name:
        return f"precision={setting.config_name}"
    return "forced: no TrainConfig precision selects it"


def lenet_results(quick: bool, data_dir: Path | None, device: torch.device) -> list[Result]:
    data = load_dataset("mnist", data_dir)
    n_train, n_test = (512, 1000) if quick else (6400, 10000)
    data = replace(
        data,
        train=data.train.subset(np.arange(n_train)),
        test=data.test.subset(np.arange(n_test)),
    )
    runs = {}
    for s in settings(device):
        runs[s.label] = (s, real_run(s, data, device))
        print(f"  precision lenet5 {s.label}: done", flush=True)

    def rate(summary: dict[str, Any]) -> float:
        return summary["history"][-1]["images_per_s"]

    base = rate(runs["fp32 NCHW"][1])
    base_acc = runs["fp32 NCHW"][1]["final"]["test_acc"]
    auto = resolve_precision("auto", device.type).label
    results = []
    for label, (s, summary) in runs.items():
        acc = summary["final"]["test_acc"]
        picked = "; auto picks this" if summary["precision"] == auto else ""
        results.append(
            Result(
                "precision",
                f"lenet5 {label}",
                rate(summary),
                base,
                note=f"{how_selected(s)}; test acc {100 * acc:.2f}% "
                f"(fp32 NCHW {100 * base_acc:.2f}%){picked}",
            )
        )
    best_label = max(runs, key=lambda k: rate(runs[k][1]))
    best, best_summary = runs[best_label]
    try:
        # --quick keeps whatever inductor cached on disk before: seconds, not a minute.
        compiled = real_run(best, data, device, compile=True, cold_cache=not quick)
    except Exception as exc:  # e.g. no C++ compiler for inductor: say so, go on
        results.append(Result("precision", f"lenet5 {best_label} + compile", note=f"failed: {exc}"))
        return results
    first, second = compiled["history"][0], compiled["history"][1]
    warmup = max(0.0, first["epoch_seconds"] - second["epoch_seconds"])
    acc = compiled["final"]["test_acc"]
    results.append(
        Result(
            "precision",
            f"lenet5 {best_label} + torch.compile",
            rate(compiled),
            rate(best_summary),
            note=f"vs the fastest uncompiled ({best_label}); test acc {100 * acc:.2f}%",
        )
    )
    results.append(
        Result(
            "precision",
            "lenet5 compile warm-up",
            warmup,
            unit="s",
            note="epoch 1 minus epoch 2 time of the compiled run; inductor cache "
            + ("as found on disk (may be warm)" if quick else "empty (a first run)"),
        )
    )
    return results


def step_loop_rates(
    model_name: str, batch: int, device: torch.device, rounds: int
) -> dict[str, float]:
    """Images/s of one training step per setting, interleaved over ``rounds``; the best."""
    shape = (1, 32, 32) if model_name in ("lenet5", "mlp") else (3, 32, 32)
    steps = {}
    for s in settings(device):
        torch.manual_seed(0)
        model = build_model(resolve_model(model_name), shape, 10).to(device)
        x = torch.randn(batch, *shape, device=device)
        if s.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        steps[s.label] = make_step(model, x, s.precision)
    best = dict.fromkeys(steps, 0.0)
    for _ in range(1 + rounds):  # the first round warms up
        for label, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            best[label] = max(best[label], batch / (time.perf_counter() - start))
    return best


def make_step(model: torch.nn.Module, x: torch.Tensor, precision: Precision) -> Any:
    y = torch.randint(0, 10, (len(x),), device=x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(x.device.type) if precision.grad_scaling else None

    def step() -> None:
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return step


def step_loop_results(models: list[str], quick: bool, device: torch.device) -> list[Result]:
    # Emulated bf16 runs a VGG step about 10x slower than fp32 on an AVX2 CPU: small batch.
    batch = 128 if device.type == "cuda" else 16
    results = []
    for name in models:
        rates = step_loop_rates(name, batch, device, rounds=1 if quick else 2)
        for label, rate in rates.items():
            results.append(
                Result(
                    "precision",
                    f"{name} {label} (step loop, b{batch})",
                    rate,
                    rates["fp32 NCHW"],
                    note="synthetic batches; fastest of interleaved rounds",
                )
            )
    return results


def measure(
    quick: bool = False,
    data_dir: Path | None = None,
    device: torch.device | None = None,
    models: list[str] | None = None,
) -> list[Result]:
    device = device or torch.device("cpu")
    results = lenet_results(quick, data_dir, device)
    if models is None:
        models = [] if quick else ["vgg13-leaky"]
    return results + step_loop_results(models, quick, device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument(
        "--models", default=None, help="step-loop models (default: vgg13-leaky, none in --quick)"
    )
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m] if args.models is not None else None
    run_main(measure, "precision and layout: images/s and test accuracy", args, models=models)


if __name__ == "__main__":
    main()
