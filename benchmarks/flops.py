"""FLOP utilisation: training FLOP/s of the VGG-style net and of the CIFAR-10 fast recipe's
network against the machine's matmul peak.

Training FLOP/s = multiply-accumulates per image (``cnnlab.models.summary``, convolutions
and dense layers) x 6 (2 FLOPs per MAC forward, 4 backward) x the images/s of a real
`cnnlab train` run (precision ``auto``). The peaks are large square matmuls timed in the
same run, before and after training (the faster counts), in bf16 and in fp32: on a CPU
without native bf16 (AVX2 only) bf16 is emulated, far below fp32, and the fp32 figure is
the meaningful one there.

    python benchmarks/flops.py [--quick] [--device cuda]
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from common import Result, script_main, sync
from train import CASES, cnnlab_run, sized

from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.datasets import load_dataset
from cnnlab.evaluation.precision import cpu_has_native_bf16, cuda_has_native_bf16

TARGETS = {"vgg-128": 0.6, "fast-128": 0.7}  # issue 5: the VGG-style net, the fast recipe


def half_dtype(device: torch.device) -> torch.dtype:
    """The half precision cnnlab's auto trains in on ``device``: bf16 where it is native
    (and on a CPU), fp16 on GPUs before compute capability 8.0."""
    if device.type == "cuda" and not cuda_has_native_bf16(device):
        return torch.float16
    return torch.bfloat16


def matmul_size(dtype: torch.dtype, device: torch.device, quick: bool) -> int:
    if device.type == "cuda":
        return 8192
    if dtype is torch.bfloat16 and not cpu_has_native_bf16():
        return 512  # emulated: about 40x slower than fp32 on an AVX2 CPU
    return 1024 if quick else 2048


def matmul_peak(dtype: torch.dtype, device: torch.device, quick: bool, reps: int = 5) -> float:
    """FLOP/s of the fastest of ``reps`` n x n matmuls (after one warm-up)."""
    n = matmul_size(dtype, device, quick)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(
    quick: bool = False, data_dir: Path | None = None, device: torch.device | None = None
) -> list[Result]:
    device = device or torch.device("cpu")
    half = half_dtype(device)
    half_name = "bf16" if half is torch.bfloat16 else "fp16"
    dtypes = (half, torch.float32)
    peaks = {d: matmul_peak(d, device, quick) for d in dtypes}
    runs = []
    datasets: dict[str, DatasetArrays] = {}  # both cases train on CIFAR-10: load it once
    for name in TARGETS:
        case = sized(CASES[name], quick, device)
        if quick and device.type == "cpu" and name == "vgg-128":
            case = replace(case, batch_size=32)  # a b128 step takes 10-30 s on a 2-core CPU
        if case.dataset not in datasets:
            datasets[case.dataset] = load_dataset(case.dataset, data_dir)
        data = datasets[case.dataset]
        cnnlab_run(case, data, device, 1)  # warm-up
        rate, summary = 0.0, {}
        for _ in range(case.rounds):
            summary = cnnlab_run(case, data, device, case.steps)
            rate = max(rate, summary["images_per_s"])
        runs.append((name, case, summary, rate))
    peaks = {d: max(peaks[d], matmul_peak(d, device, quick)) for d in dtypes}
    native = device.type == "cuda" or cpu_has_native_bf16()  # fp16 on a GPU is native
    results = []
    for name, case, summary, rate in runs:
        flops = summary["macs_per_image"] * 6 * rate
        label = Path(case.model).stem
        work = (
            f"{summary['macs_per_image'] / 1e6:.0f} M MACs x 6 x {rate:,.1f} img/s "
            f"({summary['precision']}, b{case.batch_size})"
        )
        # The target applies against the peak of the dtype cnnlab trains in here.
        trains_in = str(summary["precision"]).split()[1]  # "cuda fp16 channels_last"
        for dtype, kind in ((half, half_name), (torch.float32, "fp32")):
            note = work if kind == trains_in else f"training runs {trains_in}, no target"
            if kind != "fp32":
                note += f"; {kind} " + (
                    "native" if native else f"emulated (no native {kind}): a low peak"
                )
            results.append(
                Result(
                    "flops",
                    f"{label} training vs {kind} matmul peak",
                    flops / 1e9,
                    peaks[dtype] / 1e9,
                    unit="GFLOP/s",
                    ratio=flops / peaks[dtype],
                    percent=True,
                    target=TARGETS[name] if kind == trains_in else None,
                    note=note,
                )
            )
    return results


def main() -> None:
    script_main(measure, "FLOP utilisation of training", __doc__)


if __name__ == "__main__":
    main()
