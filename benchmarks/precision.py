"""Training-step images/s under each precision and memory layout, side by side.

This is the evidence behind `--precision auto`: fp32 NCHW, fp32 channels_last,
bf16 autocast NCHW and bf16 autocast channels_last, on the same model, batch
and threads, in one run. It also reports whether this CPU runs bf16 natively.

    python benchmarks/precision.py [--models lenet5,models/cnn7.toml] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from cnnlab.models.registry import build_model, resolve_model
from cnnlab.train.precision import cpu_has_native_bf16, resolve_precision

SETTINGS = [
    ("fp32 NCHW", None, False),
    ("fp32 channels_last", None, True),
    ("bf16 NCHW", torch.bfloat16, False),
    ("bf16 channels_last", torch.bfloat16, True),
]
SHAPES = {"lenet5": (1, 32, 32), "mlp": (1, 32, 32)}


def images_per_s(
    model_name: str, batch: int, dtype: torch.dtype | None, channels_last: bool, steps: int
) -> float:
    shape = SHAPES.get(model_name, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(resolve_model(model_name), shape, 10)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="lenet5,models/cnn7.toml")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(
        f"native bf16 on this CPU: {cpu_has_native_bf16()}; --precision auto picks: {resolve_precision('auto', 'cpu').label}"
    )
    for name in args.models.split(","):
        rates = {
            label: images_per_s(name, args.batch_size, dtype, cl, args.steps)
            for label, dtype, cl in SETTINGS
        }
        base = rates["fp32 NCHW"]
        print(f"\n{name}")
        for label, rate in rates.items():
            print(f"  {label:22s} {rate:10,.0f} img/s  {rate / base:5.2f}x fp32 NCHW", flush=True)


if __name__ == "__main__":
    main()
