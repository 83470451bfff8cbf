"""Images/s of cnnlab's batched augmentation against kornia.augmentation, op by op.

    python benchmarks/augment.py [--threads 2] [--repeats 15] [--batches 64 512] [--device cuda]

Each case runs ours and kornia's nearest equivalent on the same random batch, interleaved
call by call so that load from other processes hits both alike; the table shows the median
over the repeats after a warm-up. A ratio above 1 means ours is faster; 'best' is the same
ratio between the fastest runs. When other processes share the cores, two-thread timings
stall on the busy core: compare with --threads 1 before trusting a ratio. A second table
times the alternatives that the implementation was chosen over.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from common import Result, device_of
from torch import nn

from cnnlab.data.augment import (
    Cutout,
    HorizontalFlip,
    PadCrop,
    Recolor,
    ResizedCrop,
    Rotate,
    Translate,
    build_augment,
    warp,
)

Fn = Callable[[torch.Tensor], torch.Tensor]
MNIST, CIFAR = (1, 28, 28), (3, 32, 32)


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, int, int]
    ours: Fn
    theirs: Fn | None
    theirs_name: str


def cases(generator: torch.Generator) -> list[Case]:
    def ours(op: Callable[[torch.Tensor, torch.Generator], torch.Tensor]) -> Fn:
        return lambda x: op(x, generator)

    def erasing() -> K.RandomErasing:
        area = 8 * 8 / (32 * 32)  # kornia erases a fraction of the area, kept inside the image
        return K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, p=1.0)

    return [
        Case("flip", CIFAR, ours(HorizontalFlip(0.5)), K.RandomHorizontalFlip(p=0.5),
             "RandomHorizontalFlip"),
        Case("translate=0.1", CIFAR, ours(Translate(0.1)),
             K.RandomAffine(0.0, translate=(0.1, 0.1), p=1.0), "RandomAffine(translate)"),
        Case("rotate=20", CIFAR, ours(Rotate(20.0)), K.RandomRotation(20.0, p=1.0),
             "RandomRotation"),
        Case("crop=0.8", CIFAR, ours(ResizedCrop(0.8)),
             K.RandomResizedCrop((32, 32), scale=(0.8, 1.0), p=1.0), "RandomResizedCrop"),
        Case("pad=4 reflect", CIFAR, ours(PadCrop(4)),
             K.RandomCrop((32, 32), padding=4, padding_mode="reflect"), "RandomCrop(reflect)"),
        Case("pad=4 zero", CIFAR, ours(PadCrop(4, mode="zero")),
             K.RandomCrop((32, 32), padding=4), "RandomCrop(constant)"),
        Case("cutout=8", CIFAR, ours(Cutout(8)), erasing(), "RandomErasing"),
        Case("recolor", MNIST, ours(Recolor(0.5)), None, "(no equivalent)"),
        Case("MNIST rotate=20,translate=0.1,crop=0.8", MNIST,
             ours(build_augment("rotate=20,translate=0.1,crop=0.8")),
             # Zooming in to 1/sqrt(0.8) matches crop=0.8's area; kornia fuses it in one warp too.
             K.RandomAffine(20.0, translate=(0.1, 0.1), scale=(1.0, 1 / math.sqrt(0.8)), p=1.0),
             "RandomAffine(deg,translate,scale)"),
        Case("CIFAR flip,pad=4,cutout=8", CIFAR, ours(build_augment("flip,pad=4,cutout=8")),
             nn.Sequential(K.RandomHorizontalFlip(), K.RandomCrop((32, 32), padding=4,
                           padding_mode="reflect"), erasing()),
             "Flip+RandomCrop+RandomErasing"),
        Case("CIFAR flip,translate=0.125,cutout=8", CIFAR,
             ours(build_augment("flip,translate=0.125,cutout=8")),
             nn.Sequential(K.RandomHorizontalFlip(), K.RandomAffine(0.0, translate=(0.125, 0.125),
                           p=1.0), erasing()),
             "Flip+RandomAffine+RandomErasing"),
    ]  # fmt: skip


def alternatives(generator: torch.Generator) -> list[Case]:
    """Ours against the designs it was chosen over, to back the claims in its comments."""

    def pad_by_warp(x: torch.Tensor) -> torch.Tensor:
        shifts = torch.randint(-4, 5, (x.shape[0], 2), device=x.device, generator=generator)
        return warp(x, Translate(0.1).matrix(shifts.float(), x.shape[-2], x.shape[-1]))

    def pad_by_windows(x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        top, left = torch.randint(0, 9, (2, b), device=x.device, generator=generator)
        windows = F.pad(x, (4,) * 4, mode="reflect").unfold(2, h, 1).unfold(3, w, 1)
        return windows[torch.arange(b, device=x.device), :, top, left]

    def rotate_by_affine_grid(x: torch.Tensor) -> torch.Tensor:
        rad = (torch.rand(x.shape[0], device=x.device, generator=generator) * 2 - 1) * 0.35
        cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
        theta = torch.stack([cos, -sin, zero, sin, cos, zero], 1).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False).clamp_(0, 1)

    def flip_by_where(x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    op = HorizontalFlip(0.5)
    return [
        Case("pad=4 zero: gather vs affine, integer shifts", CIFAR,
             lambda x: PadCrop(4, mode="zero")(x, generator), pad_by_warp, "warp"),
        Case("pad=4 reflect: index gather vs pad+windows", CIFAR,
             lambda x: PadCrop(4)(x, generator), pad_by_windows, "F.pad+unfold"),
        Case("rotate: separable grid vs F.affine_grid", CIFAR,
             lambda x: Rotate(20.0)(x, generator), rotate_by_affine_grid, "affine_grid"),
        Case("flip: gather vs where(flip(x), x)", CIFAR,
             lambda x: op(x, generator), flip_by_where, "torch.where"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Timing:
    median: float
    best: float  # the least disturbed run: other processes share these cores


def time_pair(case: Case, x: torch.Tensor, repeats: int, calls: int) -> list[Timing]:
    """Seconds per call of ours, then of theirs when there is one."""
    fns = [case.ours] if case.theirs is None else [case.ours, case.theirs]
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for fn in fns:  # warm-up: allocator, kernel selection, kornia's lazy set-up
        for _ in range(3):
            fn(x)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                fn(x)
            sync()
            out.append((time.perf_counter() - start) / calls)
    return [Timing(statistics.median(s), min(s)) for s in samples]


def report(title: str, rows: list[Case], batches: list[int], args: argparse.Namespace) -> None:
    print(f"\n{title}")
    header = (
        f"{'case':44} {'batch':>5} {'ours img/s':>10} {'other img/s':>11} {'ratio':>6} "
        f"{'best':>6}  other"
    )
    print(header)
    print("-" * (len(header) + 32))
    for case in rows:
        for batch in batches:
            x = torch.rand(batch, *case.shape, device=args.device)
            timings = time_pair(case, x, args.repeats, calls=max(1, 512 // batch))
            line = f"{case.name:44} {batch:5d} {batch / timings[0].median:10.0f}"
            if len(timings) == 1:
                print(f"{line} {'-':>11} {'-':>6} {'-':>6}  {case.theirs_name}")
                continue
            ours, theirs = timings
            print(
                f"{line} {batch / theirs.median:11.0f} {theirs.median / ours.median:6.2f} "
                f"{theirs.best / ours.best:6.2f}  {case.theirs_name}"
            )


def measure(
    quick: bool = False, data_dir: Path | None = None, device: torch.device | None = None
) -> list[Result]:
    """Ours vs kornia as table rows (median ratio); --quick: the composite pipelines only."""
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)
    repeats, batches = (3, [512]) if quick else (15, [64, 512])
    results = []
    for case in cases(generator):
        if case.theirs is None or (quick and "," not in case.name):
            continue
        for batch in batches:
            x = torch.rand(batch, *case.shape, device=device)
            ours, theirs = time_pair(case, x, repeats, calls=max(1, 512 // batch))
            results.append(
                Result(
                    "augment",
                    f"{case.name} (b{batch})",
                    batch / ours.median,
                    batch / theirs.median,
                    note=f"kornia {case.theirs_name}; median of {repeats}, fastest runs "
                    f"{theirs.best / ours.best:.2f}x",
                )
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device = device_of(args.device)
    torch.manual_seed(0)  # kornia draws from the global generator
    generator = torch.Generator(device=args.device).manual_seed(0)
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}; ratio = ours/other speed (best: of the fastest runs)"
    )
    report("ours vs kornia.augmentation", cases(generator), args.batches, args)
    report("ours vs the alternatives it replaced", alternatives(generator), args.batches, args)


if __name__ == "__main__":
    main()
