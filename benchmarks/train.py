"""Training images/s: `cnnlab train` vs the plain torchvision DataLoader loop, same run.

The reference trains the way the seed projects do: per-sample PIL transforms in a
DataLoader (0 and 2 workers; the faster counts), NCHW fp32, Adam. cnnlab runs its real
trainer (``train()``: the device loader, batched augmentation, the precision policy
``auto``) on the same model, batch size, optimizer, images and threads. Both sides warm up
on one batch first; then rounds alternate between them (cnnlab, reference, cnnlab, ...),
each round one epoch of a few batches timed from its loader's start, and the fastest
round of each side counts, so that a burst of load from other processes hits both alike.
Evaluation is excluded on both sides (cnnlab's ``train_seconds``).

    python benchmarks/train.py [--quick] [--cases lenet5-64,vgg-128] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from common import Result, add_common_args, run_main, sync
from reference import reference_loader, to_device
from torchvision import transforms as T

from cnnlab.config.schema import make_config
from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import load_dataset
from cnnlab.data.loader import channel_stats, pad_to
from cnnlab.models.registry import build_model, preferred_input_size, resolve_model
from cnnlab.training.loop import train

CIFAR_AUG = ("flip,pad=4", (T.RandomHorizontalFlip(), T.RandomCrop(32, padding=4)))


@dataclass(frozen=True)
class Case:
    dataset: str
    model: str
    batch_size: int
    steps: int  # timed training steps per round, each side
    rounds: int
    augment: str = ""  # ours
    pil_transforms: tuple = ()  # the reference's equivalent
    # The conv nets are compute-bound (a step takes seconds, loading a batch milliseconds),
    # so a second reference with 2 loader workers would only double the time taken.
    workers: tuple[int, ...] = (0, 2)
    target: float | None = None  # the ratio the issue asks for


def cifar(model: str, batch: int, target: float | None = None) -> Case:
    # One step per round: a step of these nets takes many seconds on a small CPU.
    return Case("cifar10", model, batch, 1, 3, *CIFAR_AUG, workers=(0,), target=target)


FAST_NET = str(Path(__file__).resolve().parents[1] / "models" / "cifar10-fast-narrow.toml")

CASES = {
    "lenet5-64": Case("mnist", "lenet5", 64, 100, 3, target=4.0),
    "lenet5-256": Case("mnist", "lenet5", 256, 50, 3, target=3.0),  # issue 3's batch size
    "lenet5-512": Case("mnist", "lenet5", 512, 40, 3, target=10.0),
    "vgg-128": cifar("vgg13-leaky", 128, 5.0),
    "vgg-512": cifar("vgg13-leaky", 512, 5.0),
    "resnet18-128": cifar("resnet18", 128),
    "resnet18-512": cifar("resnet18", 512),
    # The CIFAR-10 fast recipe's network and batch (studies/cifar10-fast.toml): a step
    # takes about 0.25 s here, so more of them per round.
    "fast-128": Case(
        "cifar10",
        FAST_NET,
        128,
        20,
        3,
        "flip,pad=2",
        (T.RandomHorizontalFlip(), T.RandomCrop(32, padding=2, padding_mode="reflect")),
        (0,),
    ),
}


def default_cases(quick: bool, device: torch.device) -> list[str]:
    if quick and device.type == "cpu":  # a CIFAR step takes 10-100 s on a 2-core CPU
        return ["lenet5-64", "lenet5-256", "lenet5-512"]
    return list(CASES)


def sized(case: Case, quick: bool, device: torch.device) -> Case:
    if device.type == "cuda":  # milliseconds a step: more of them for a stable timing
        case = replace(case, steps=max(case.steps, 50))
    if quick:
        case = replace(case, steps=max(1, case.steps // 10), rounds=2)
    return case


def subset(data: DatasetArrays, n: int) -> DatasetArrays:
    # A tiny test split: evaluation is not timed, but train() runs it.
    keep, few = np.arange(n), np.arange(16)
    return replace(data, train=data.train.subset(keep), test=data.test.subset(few))


def cnnlab_run(case: Case, data: DatasetArrays, device: torch.device, steps: int) -> dict:
    """The summary of a real one-epoch `cnnlab train` run of ``steps`` batches."""
    cfg = make_config(
        {
            "dataset": case.dataset,
            "model": case.model,
            "epochs": 1,
            "batch_size": case.batch_size,
            "optimizer": {"name": "adam", "lr": 1e-3},
            "augment": case.augment,
            "precision": "auto",
            "device": device.type,
        }
    )
    with tempfile.TemporaryDirectory() as out:
        return train(cfg, Path(out), data=subset(data, steps * case.batch_size)).summary.to_dict()


class Reference:
    """The plain loop: a model, Adam and a DataLoader over the same images as cnnlab's."""

    def __init__(
        self, case: Case, data: DatasetArrays, workers: int, device: torch.device, n: int
    ) -> None:
        spec = resolve_model(case.model)
        size = preferred_input_size(spec)
        images = data.train.images[:n]
        images = pad_to(images, size) if size else images
        norm = channel_stats(images)
        self.loader = reference_loader(
            images,
            data.train.labels[:n],
            list(case.pil_transforms),
            norm.mean,
            norm.std,
            case.batch_size,
            workers,
            device=device,
        )
        torch.manual_seed(0)
        self.model = build_model(spec, images.shape[1:], len(data.classes)).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.device = device
        self.model.train()
        self.epoch(1)  # warm-up: kernels, allocator, threads

    def epoch(self, k: int) -> float:
        """Images/s of an epoch of ``k`` batches, timed from the DataLoader iterator's start
        (its workers' too), as cnnlab's epoch is timed from its loader's start."""
        start = time.perf_counter()
        seen = 0
        for x, y in itertools.islice(self.loader, k):
            x, y = to_device(x, self.device), to_device(y, self.device)
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            seen += len(y)
        sync(self.device)
        return seen / (time.perf_counter() - start)


def bench_case(name: str, case: Case, data: DatasetArrays, device: torch.device) -> Result:
    n = case.steps * case.batch_size
    summary = cnnlab_run(case, data, device, 1)  # warm-up: kernels, allocator, threads
    refs = {w: Reference(case, data, w, device, n) for w in case.workers}
    ours, plain = 0.0, dict.fromkeys(case.workers, 0.0)
    for _ in range(case.rounds):  # interleaved: cnnlab, plain w=0, plain w=2, cnnlab, ...
        summary = cnnlab_run(case, data, device, case.steps)
        ours = max(ours, summary["images_per_s"])
        for w, ref in refs.items():
            plain[w] = max(plain[w], ref.epoch(case.steps))
    plain_text = ", ".join(f"w={w} {rate:,.0f}" for w, rate in plain.items())
    return Result(
        "train",
        f"{name} ({case.model}, {case.dataset}, b{case.batch_size})",
        ours,
        max(plain.values()),
        target=case.target,
        note=f"{summary['precision']}; plain {plain_text} img/s; "
        f"{case.rounds}x{case.steps} steps, best",
    )


def measure(
    quick: bool = False,
    data_dir: Path | None = None,
    device: torch.device | None = None,
    cases: list[str] | None = None,
) -> list[Result]:
    device = device or torch.device("cpu")
    names = cases or default_cases(quick, device)
    results = []
    datasets: dict[str, DatasetArrays] = {}
    for name in names:
        case = sized(CASES[name], quick, device)
        if case.dataset not in datasets:
            datasets[case.dataset] = load_dataset(case.dataset, data_dir)
        result = bench_case(name, case, datasets[case.dataset], device)
        print(f"  train {result.case}: {result.ratio:.2f}x", flush=True)
        results.append(result)
    skipped = [n for n in CASES if n not in names]
    if skipped and cases is None:
        results.append(Result("train", ", ".join(skipped), note="not run in --quick on a CPU"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--cases", default=None, help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args()
    cases = args.cases.split(",") if args.cases else None
    run_main(measure, "training images/s: cnnlab train vs plain DataLoader loop", args, cases=cases)


if __name__ == "__main__":
    main()
