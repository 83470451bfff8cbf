"""Images/s of cnnlab's device loader + batched augmentation vs torchvision's DataLoader.

The reference is how the seed projects load data: a Dataset that makes one PIL
image per sample and runs per-sample ``transforms``, batched by
``torch.utils.data.DataLoader`` (num_workers 0 and 2; the faster counts). Both sides
produce normalised float batches on the device with the same augmentation; both run in
this process, interleaved over rounds (the fastest round of each counts), so the ratio
is the claim, not the absolute numbers.

    python benchmarks/loader.py [--quick] [--data-dir DIR] [--images 20000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from common import Result, add_common_args, run_main, sync
from reference import reference_loader, to_device
from torchvision import transforms as T

from cnnlab.data.augment import build_augment, parse_augment
from cnnlab.data.datasets import load_dataset
from cnnlab.data.loader import DeviceLoader, channel_stats

CASES = {
    # name: (dataset, our spec, torchvision per-sample transforms)
    "mnist rotate+translate+crop": (
        "mnist",
        "rotate=20,translate=0.1,crop=0.8",
        lambda size: [
            T.RandomAffine(degrees=20, translate=(0.1, 0.1)),
            T.RandomResizedCrop(size, scale=(0.8, 1.0)),
        ],
    ),
    "cifar10 flip+pad-crop+cutout": (
        "cifar10",
        "flip,pad=4,cutout=8",
        lambda size: [T.RandomHorizontalFlip(), T.RandomCrop(size, padding=4)],
    ),
}


def time_batches(batches: Callable[[], Iterable], limit: int, device: torch.device) -> float:
    """Images/s over the first ``limit`` images on ``device``, after one warm-up batch
    (which also starts the workers)."""
    it = iter(batches())
    next(it)
    seen = 0
    start = time.perf_counter()
    for x, _ in it:
        x = to_device(x, device)
        seen += len(x)
        if seen >= limit:
            break
    sync(device)
    return seen / (time.perf_counter() - start)


def bench_case(
    name: str, data_dir: Path | None, images: int, batch: int, device: torch.device, rounds: int
) -> Result:
    dataset, spec, make_transforms = CASES[name]
    split = load_dataset(dataset, data_dir).train
    norm = channel_stats(split.images)
    size = split.images.shape[2]
    # Cutout of an 8x8 square = RandomErasing of 64 pixels with aspect ratio 1.
    area = 64 / (size * size)
    erase = (
        (T.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0)),) if "cutout" in spec else ()
    )
    loaders: dict[str, Callable[[], Iterable]] = {
        "cnnlab": lambda: DeviceLoader(
            split,
            norm,
            batch,
            device=device,
            shuffle=True,
            seed=0,
            drop_last=True,
            augment=build_augment(parse_augment(spec)),
        )
    }
    for workers in (0, 2):
        loaders[f"w={workers}"] = lambda workers=workers: reference_loader(
            split.images,
            split.labels,
            make_transforms(size),
            norm.mean,
            norm.std,
            batch,
            workers,
            erase,
            device=device,
        )
    rates = dict.fromkeys(loaders, 0.0)
    for _ in range(rounds):
        for key, make in loaders.items():
            rates[key] = max(rates[key], time_batches(make, images, device))
    plain = {k: v for k, v in rates.items() if k != "cnnlab"}
    plain_text = ", ".join(f"{k} {v:,.0f}" for k, v in plain.items())
    return Result(
        "loader",
        f"{name} (b{batch})",
        rates["cnnlab"],
        max(plain.values()),
        note=f"plain DataLoader {plain_text} img/s; best of {rounds} rounds",
    )


def measure(
    quick: bool = False,
    data_dir: Path | None = None,
    device: torch.device | None = None,
    images: int | None = None,
    batch_size: int = 128,
) -> list[Result]:
    device = device or torch.device("cpu")
    images = images or (1024 if quick else 10000)
    return [bench_case(name, data_dir, images, batch_size, device, rounds=2) for name in CASES]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--images", type=int, default=None, help="images timed per round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    run_main(
        measure,
        "data loading images/s: DeviceLoader vs torchvision DataLoader",
        args,
        images=args.images,
        batch_size=args.batch_size,
    )


if __name__ == "__main__":
    main()
