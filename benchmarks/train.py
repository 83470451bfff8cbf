"""Training images/s: `cnnlab train` vs the plain torchvision DataLoader loop, same run.

The reference trains the way the seed projects do: per-sample PIL transforms in
a DataLoader, NCHW fp32, Adam. cnnlab runs its real trainer (``train()``: the
device loader, batched augmentation, the precision policy ``auto``) on the same
model, batch size, optimizer, images and thread count. Each side trains on
the same subset of the training split for one epoch; the figure is training
images per second (evaluation excluded on both sides).

    python benchmarks/train.py [--data-dir DIR] [--cases lenet5-64,lenet5-256,vgg-128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from reference import reference_loader
from torchvision import transforms as T

from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.loader import channel_stats, pad_to
from cnnlab.data.sources import load_dataset
from cnnlab.models.registry import build_model, preferred_input_size, resolve_model
from cnnlab.train.config import make_config
from cnnlab.train.loop import train


@dataclass(frozen=True)
class Case:
    dataset: str
    model: str
    batch_size: int
    images: int  # training images timed on each side
    augment: str  # ours
    pil_transforms: tuple  # the reference's equivalent


CASES = {
    "lenet5-64": Case("mnist", "lenet5", 64, 12_800, "", ()),
    "lenet5-256": Case("mnist", "lenet5", 256, 25_600, "", ()),
    "lenet5-512": Case("mnist", "lenet5", 512, 25_600, "", ()),
    "vgg-128": Case(
        "cifar10",
        "vgg13-leaky",
        128,
        640,
        "flip,pad=4",
        (T.RandomHorizontalFlip(), T.RandomCrop(32, padding=4)),
    ),
}


def subset(data: DatasetArrays, n: int) -> DatasetArrays:
    keep = slice(0, n)
    small_test = Split(data.test.images[:256], data.test.labels[:256])
    return replace(
        data, train=Split(data.train.images[keep], data.train.labels[keep]), test=small_test
    )


def ours(case: Case, data: DatasetArrays) -> tuple[float, str]:
    cfg = make_config(
        {
            "dataset": case.dataset,
            "model": case.model,
            "epochs": 1,
            "batch_size": case.batch_size,
            "optimizer": {"name": "adam", "lr": 1e-3},
            "augment": case.augment,
            "precision": "auto",
            "device": "cpu",
        }
    )
    with tempfile.TemporaryDirectory() as out:
        summary = train(cfg, Path(out), data=data)
    return summary["images_per_s"], summary["precision"]


def reference(case: Case, data: DatasetArrays, workers: int) -> float:
    spec = resolve_model(case.model)
    size = preferred_input_size(spec)
    images = pad_to(data.train.images, size) if size else data.train.images
    norm = channel_stats(images)
    loader = reference_loader(
        images,
        data.train.labels,
        list(case.pil_transforms),
        norm.mean,
        norm.std,
        case.batch_size,
        workers,
    )
    torch.manual_seed(0)
    model = build_model(spec, images.shape[1:], len(data.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cases", default="lenet5-64,lenet5-256,vgg-128", help=", ".join(CASES))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'case':12s} {'cnnlab img/s':>13s} {'plain w=0':>10s} {'plain w=2':>10s} {'ratio':>7s}  cnnlab precision"
    )
    for name in args.cases.split(","):
        case = CASES[name]
        data = subset(load_dataset(case.dataset, args.data_dir), case.images)
        ours_rate, precision = ours(case, data)
        plain = [reference(case, data, workers) for workers in (0, 2)]
        # Against the faster of the two reference settings: the honest ratio.
        print(
            f"{name:12s} {ours_rate:13,.0f} {plain[0]:10,.0f} {plain[1]:10,.0f} "
            f"{ours_rate / max(plain):6.1f}x  {precision}",
            flush=True,
        )


if __name__ == "__main__":
    main()
