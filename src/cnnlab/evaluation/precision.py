"""Device and numeric-precision policy: which device, autocast dtype and memory layout.

``auto`` is fast by default: on CUDA, AMP (bf16 where supported, else fp16 with
a grad scaler) and channels_last; on a CPU with native bf16 (AVX-512 BF16 or
AMX), bf16 autocast and channels_last; on a CPU without it, fp32 channels_last,
since emulated bf16 is several times slower than fp32 there while channels_last
still speeds up convolutions (measured: benchmarks/precision.py).
``fp32`` is the exact path: no autocast, NCHW, bit-for-bit reproducible on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: no autocast, fp32 throughout
    channels_last: bool
    grad_scaling: bool  # fp16 needs loss scaling against gradient underflow

    @property
    def label(self) -> str:
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{self.device.type} {dtype} {layout}"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.autocast_dtype is None:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                yield


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively (AVX-512 BF16 / AMX), not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device '{name}' requested but no CUDA GPU is available; use --device cpu or auto"
        )
    return torch.device(name)


def resolve_precision(precision: str, device_name: str = "auto") -> Precision:
    device = resolve_device(device_name)
    cuda = device.type == "cuda"
    if precision == "fp32":
        return Precision(device, None, False, False)
    if precision == "bf16":
        return Precision(device, torch.bfloat16, True, False)
    if precision == "fp16":
        return Precision(device, torch.float16, True, cuda)
    if precision != "auto":
        raise ConfigError(f"precision '{precision}' is not one of auto, fp32, bf16, fp16")
    if cuda:
        if torch.cuda.is_bf16_supported():
            return Precision(device, torch.bfloat16, True, False)
        return Precision(device, torch.float16, True, True)
    if cpu_has_native_bf16():
        return Precision(device, torch.bfloat16, True, False)
    return Precision(device, None, True, False)
