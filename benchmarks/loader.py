"""Images/s of cnnlab's device loader + batched augmentation vs torchvision's DataLoader.

The reference is how the seed projects load data: a Dataset that makes one PIL
image per sample and runs per-sample ``transforms``, batched by
``torch.utils.data.DataLoader`` (num_workers 0 and 2). Both sides produce
normalised float batches with the same augmentation; both run in this process
on this machine, so the ratio is the claim, not the absolute numbers.

    python benchmarks/loader.py [--data-dir DIR] [--images 20000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from reference import reference_loader
from torchvision import transforms as T

from cnnlab.data.augment import build_augment, parse_augment
from cnnlab.data.loader import DeviceLoader, channel_stats
from cnnlab.data.sources import load_dataset

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


def time_batches(batches, limit: int) -> float:
    """Images/s over the first ``limit`` images, after one warm-up batch."""
    it = iter(batches)
    next(it)
    seen = 0
    start = time.perf_counter()
    for x, _ in it:
        seen += len(x)
        if seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def bench_case(
    name: str, data_dir: Path | None, images: int, batch: int
) -> list[tuple[str, float]]:
    dataset, spec, make_transforms = CASES[name]
    data = load_dataset(dataset, data_dir)
    split = data.train
    norm = channel_stats(split.images)
    ours = DeviceLoader(
        split,
        norm,
        batch,
        shuffle=True,
        seed=0,
        drop_last=True,
        augment=build_augment(parse_augment(spec)),
    )
    size = split.images.shape[2]
    # Cutout of an 8x8 square = RandomErasing of 64 pixels with aspect ratio 1.
    area = 64 / (size * size)
    erase = (
        (T.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0)),) if "cutout" in spec else ()
    )
    results = [("cnnlab DeviceLoader", time_batches(ours, images))]
    for workers in (0, 2):
        loader = reference_loader(
            split.images,
            split.labels,
            make_transforms(size),
            norm.mean,
            norm.std,
            batch,
            workers,
            erase,
        )
        results.append((f"torchvision DataLoader, {workers} workers", time_batches(loader, images)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--images", type=int, default=20000, help="images timed per loader")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    for name in CASES:
        rows = bench_case(name, args.data_dir, args.images, args.batch_size)
        ours = rows[0][1]
        print(f"\n{name}")
        print(f"  {'loader':40s} {'images/s':>12s} {'cnnlab is':>10s}")
        for label, rate in rows:
            print(f"  {label:40s} {rate:12,.0f} {ours / rate:9.1f}x")


if __name__ == "__main__":
    main()
