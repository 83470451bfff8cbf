"""Device and numeric-precision policy: which device, autocast dtype and memory layout.

``auto`` is fast by default: on CUDA, AMP (bf16 on GPUs of compute capability 8.0 and
up, where it runs natively, else fp16 with a grad scaler) and channels_last; on a CPU
with AMX, bf16 autocast and channels_last; on any other CPU, fp32 channels_last, since
bf16 there is emulated (several times slower) or, with AVX-512 BF16 alone, no faster
than fp32, while channels_last still speeds up convolutions (measured:
benchmarks/precision.py).
``fp32`` is the exact path: no autocast, NCHW, bit-for-bit reproducible on CPU.
"""

from __future__ import annotations

import contextlib
import os
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


def cpu_has_fast_bf16() -> bool:
    """True when bf16 autocast should train faster than fp32 on this CPU: with AMX tiles.

    AVX-512 BF16 alone is native but not faster (measured on a 2-core Xeon, 2026-12-02,
    benchmarks/precision.py: bf16 channels_last 0.85x fp32 NCHW for LeNet-5 on MNIST, and
    the 32-64-128 CNN of models/wide-cnn.toml 1.01x): autocast's casts cost what the
    narrower arithmetic saves. AMX multiplies bf16 tiles at several times the AVX-512
    rate (not measured here: no such CPU was available)."""
    try:
        return cpu_has_native_bf16() and bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device '{name}' requested but no CUDA GPU is available; use --device cpu or auto"
        )
    if name.startswith("cuda:"):
        index, count = int(name.removeprefix("cuda:")), torch.cuda.device_count()
        if index >= count:
            gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ConfigError(
                f"device '{name}' requested but this machine has {count} GPU"
                f"{'s' if count != 1 else ''} ({gpus}); choose one of them or --device auto"
            )
    return torch.device(name)


# bf16 has tensor cores from compute capability 8.0 (Ampere) on; on a V100 (7.0) or T4
# (7.5) torch.cuda.is_bf16_supported() still says True (emulated), and bf16 is slower
# than fp16 there.
NATIVE_BF16_CAPABILITY = (8, 0)


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the run's own GPU (not the current one) computes bf16 natively."""
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


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
        if cuda_has_native_bf16(device):
            return Precision(device, torch.bfloat16, True, False)
        return Precision(device, torch.float16, True, True)
    if cpu_has_fast_bf16():
        return Precision(device, torch.bfloat16, True, False)
    return Precision(device, None, True, False)


# cuBLAS reuses its workspace across streams unless told a fixed layout; deterministic
# algorithms then raise. Read when cuBLAS initialises, so it is set before the first matmul.
CUBLAS_DETERMINISTIC = ":4096:8"


def configure_backends(precision: Precision, deterministic: bool = False) -> None:
    """Process-wide switches for a run of ``precision``.

    fp32 means fp32: on Ampere and later, cuDNN convolutions would otherwise run in TF32
    (10-bit mantissa) by default; and cuDNN's autotuner stays off, so the algorithm (and
    the result) does not depend on a timing race. The mixed-precision paths (the fast
    ones) let cuDNN pick the fastest algorithm for the fixed batch shapes, unless the run
    is ``deterministic``: then every algorithm is a deterministic one (torch raises on an
    operation that has none) and the autotuner stays off.
    """
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        # Only on a change: the call imports torch._inductor, ~3 s of every fresh process.
        torch.use_deterministic_algorithms(deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    if precision.device.type != "cuda":
        return
    exact = precision.autocast_dtype is None
    torch.backends.cuda.matmul.allow_tf32 = not exact
    torch.backends.cudnn.allow_tf32 = not exact
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not (exact or deterministic)


_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_record(precision: Precision) -> dict[str, object]:
    """What a run resolved ``auto`` to, as plain values for its checkpoint."""
    dtype = next(k for k, v in _DTYPES.items() if v == precision.autocast_dtype)
    return {
        "device": precision.device.type,
        "dtype": dtype,
        "channels_last": precision.channels_last,
        "grad_scaling": precision.grad_scaling,
        "label": precision.label,
    }


def run_precision(
    config: dict[str, object],
    device: str,
    precision: str | None = None,
    trained_on: dict[str, object] | None = None,
) -> Precision:
    """The precision to re-score a run with: the one it was trained with, unless
    ``precision`` asks otherwise, so that `cnnlab evaluate` agrees with the run's
    summary.json (an fp32 run is not re-scored in bf16 on a GPU). ``trained_on`` (the
    checkpoint's :func:`precision_record`) is used exactly when the device is of the same
    kind; else the run's setting is resolved for this device."""
    if precision is None and trained_on and trained_on.get("dtype") in _DTYPES:
        here = resolve_device(device)
        if here.type == trained_on.get("device"):
            return Precision(
                here,
                _DTYPES[str(trained_on["dtype"])],
                bool(trained_on.get("channels_last")),
                bool(trained_on.get("grad_scaling")) and here.type == "cuda",
            )
    return resolve_precision(precision or str(config.get("precision") or "auto"), device)
