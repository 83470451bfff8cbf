"""What a run trained with and where: versions, device, host, date and git commit.

Taken when a run starts, so a report made later, elsewhere, still says where the
numbers came from. Nothing here may fail a run: what cannot be found is ``None``.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime

import torch

from cnnlab.evaluation.precision import Precision
from cnnlab.records import Provenance
from cnnlab.version import __version__

GIT_SECONDS = 5.0


def device_label(precision: Precision) -> str:
    """E.g. "cpu fp32 channels_last" or "cuda bf16 channels_last (NVIDIA H100 80GB HBM3)"."""
    label = precision.label
    if precision.device.type == "cuda":
        label += f" ({torch.cuda.get_device_name(precision.device)})"
    return label


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=GIT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_state(cwd: str) -> tuple[str | None, bool | None]:
    """The commit checked out in ``cwd`` and whether tracked files differ from it."""
    commit = _git("-C", cwd, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("-C", cwd, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def collect_provenance(precision: Precision) -> Provenance:
    cuda_build = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if cuda_build and torch.cuda.is_available() else None
    commit, dirty = git_state(os.getcwd())
    return Provenance(
        cnnlab=__version__,
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=cuda_build,
        cudnn=None if cudnn is None else str(cudnn),
        device=device_label(precision),
        cpu=cpu_model(),
        host=socket.gethostname(),
        platform=f"{sys.platform} {platform.release()}",
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        git_commit=commit,
        git_dirty=dirty,
    )
