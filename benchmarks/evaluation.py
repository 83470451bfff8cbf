"""Evaluation images/s: cnnlab's inference path vs the plain DataLoader eval loop.

cnnlab: ``predict_logits`` (inference mode, the ``auto`` precision and layout) over the
device loader of the test split at its default evaluation batch size. The reference:
per-sample ToTensor + Normalize in a DataLoader (0 and 2 workers; the faster counts),
batch 1000, NCHW fp32, ``torch.no_grad``. Same weights on both sides (an untrained model:
the speed does not depend on them), so their predictions must agree. Both warm up on a
small pass; then timed passes alternate and the fastest of each side counts. Without
--quick: the whole MNIST test set and every 10th CIFAR-10 test image (a VGG forward pass
takes 10-50 ms an image on a 2-core CPU).

    python benchmarks/evaluation.py [--quick] [--device cuda]
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from common import Result, best_rate, script_main
from reference import reference_loader, to_device

from cnnlab.config.schema import make_config
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.datasets import load_dataset
from cnnlab.data.loader import DeviceLoader, pad_to
from cnnlab.evaluation.metrics import predict_logits
from cnnlab.evaluation.precision import Precision, resolve_precision
from cnnlab.models.registry import build_model, preferred_input_size, resolve_model
from cnnlab.training.prepare import make_loaders

REFERENCE_BATCH = 1000
WARM_UP = 16  # images


@dataclass(frozen=True)
class Case:
    dataset: str
    model: str
    images: int  # test images per pass: the whole test set, or every k-th image
    rounds: int
    quick_images: int
    quick_rounds: int
    # VGG is compute-bound: a 2-worker reference would only double the time taken.
    workers: tuple[int, ...] = (0, 2)


CASES = [
    Case("mnist", "lenet5", 10_000, 3, 2_000, 2),
    Case("cifar10", "vgg13-leaky", 1_000, 1, 128, 1, workers=(0,)),
]


def every_kth(split: Split, n: int) -> Split:
    """``n`` images spread over the whole split (CIFAR-10's JPEG copy is sorted by class)."""
    return split.subset(np.linspace(0, len(split) - 1, min(n, len(split))).astype(np.int64))


class Ours:
    """The model and test loader as ``cnnlab evaluate`` and the trainer build them."""

    def __init__(self, case: Case, data: DatasetArrays, device: torch.device) -> None:
        cfg = make_config({"dataset": case.dataset, "model": case.model, "device": device.type})
        self.precision: Precision = resolve_precision(cfg.precision, cfg.device)
        spec = resolve_model(case.model)
        self.size = preferred_input_size(spec)
        self.loaders = make_loaders(cfg, data, self.precision, self.size)
        torch.manual_seed(0)
        model = build_model(spec, self.loaders.input_shape, len(data.classes)).to(device)
        self.nchw = copy.deepcopy(model).eval()  # the reference's copy: same weights
        if self.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.batch_size = cfg.eval_batch_size

    def run(self, loader: DeviceLoader | None = None) -> torch.Tensor:
        return predict_logits(self.model, loader or self.loaders.test, self.precision)[0]

    def warm_up(self, n: int) -> None:
        test = self.loaders.test
        few = Split(test.images[:n].cpu().numpy(), test.labels[:n].cpu().numpy())
        self.run(
            DeviceLoader(
                few,
                self.loaders.normalization,
                n,
                device=self.precision.device,
                channels_last=self.precision.channels_last,
            )
        )


def plain_eval(model: torch.nn.Module, loader: torch.utils.data.DataLoader) -> torch.Tensor:
    """The seed projects' evaluation loop."""
    device = next(model.parameters()).device
    model.eval()
    outs = []
    with torch.no_grad():
        for x, _ in loader:
            outs.append(model(to_device(x, device)))
    return torch.cat(outs)


def bench_case(case: Case, data: DatasetArrays, device: torch.device, quick: bool) -> Result:
    n, rounds = (case.quick_images, case.quick_rounds) if quick else (case.images, case.rounds)
    data = replace(data, test=every_kth(data.test, n))
    ours = Ours(case, data, device)
    images = data.test.images
    images = pad_to(images, ours.size) if ours.size else images
    norm = ours.loaders.normalization

    def plain_loader(workers: int, count: int = n) -> torch.utils.data.DataLoader:
        batch = min(REFERENCE_BATCH, count)
        return reference_loader(
            images[:count], data.test.labels[:count], [], norm.mean, norm.std, batch, workers,
            train=False, device=device,
        )  # fmt: skip

    ours.warm_up(WARM_UP)  # threads, allocator, kernels: a small pass on each side
    plain_eval(ours.nchw, plain_loader(0, WARM_UP))
    logits: dict[object, torch.Tensor] = {}  # each side's last output

    def pass_of(key: object, run: Callable[[], torch.Tensor]) -> Callable[[], int]:
        def one_pass() -> int:
            logits[key] = run()
            return len(logits[key])

        return one_pass

    work = {"ours": pass_of("ours", ours.run)}
    for w in case.workers:
        loader = plain_loader(w)
        work[w] = pass_of(w, lambda loader=loader: plain_eval(ours.nchw, loader))
    rates = dict.fromkeys(work, 0.0)
    for _ in range(rounds):  # interleaved: ours, plain w=0, plain w=2, ours, ...
        for key, one_pass in work.items():
            rates[key] = max(rates[key], best_rate(one_pass, 1, device))
    agree = (logits["ours"].argmax(1) == logits[0].argmax(1)).float().mean()
    plain = {w: r for w, r in rates.items() if w != "ours"}
    plain_text = ", ".join(f"w={w} {r:,.0f}" for w, r in plain.items())
    return Result(
        "evaluation",
        f"{case.dataset} {case.model} ({n} test images)",
        rates["ours"],
        max(plain.values()),
        note=f"{ours.precision.label}, batch {ours.batch_size}; plain batch "
        f"{min(REFERENCE_BATCH, n)} {plain_text} img/s; predictions agree "
        f"{100 * agree.item():.1f}%",
    )


def measure(
    quick: bool = False, data_dir: Path | None = None, device: torch.device | None = None
) -> list[Result]:
    device = device or torch.device("cpu")
    results = []
    for case in CASES:
        result = bench_case(case, load_dataset(case.dataset, data_dir), device, quick)
        print(f"  evaluation {result.case}: {result.ratio:.2f}x", flush=True)
        results.append(result)
    return results


def main() -> None:
    script_main(
        measure, "evaluation images/s: predict_logits vs plain DataLoader eval loop", __doc__
    )


if __name__ == "__main__":
    main()
