"""The benchmark scripts as a user starts them: a problem cnnlab names is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a fresh interpreter importing torch: seconds
def test_a_benchmark_without_its_dataset_says_so_in_one_line_and_exits_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/flops.py", "--quick", "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flops.py: error: cifar10: dataset not found")
    assert "--data-dir" in lines[0]  # the fix is named
