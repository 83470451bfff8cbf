"""benchmarks/gpu_check.py end to end on this CPU in its dry mode, so that the script a
GPU machine runs has run before it gets there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_learnable_mnist
from fakedata import write_cifar10_batches

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_in_its_dry_mode(tmp_path):
    data = tmp_path / "data"
    write_learnable_mnist(data / "mnist")
    write_cifar10_batches(data / "cifar10", n_per_batch=100)
    rows_file = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--device", "cpu",
         "--data-dir", str(data), "--json", str(rows_file), "--budget", "400"],
        cwd=ROOT, capture_output=True, text=True, timeout=480,
    )  # fmt: skip
    rows = json.loads(rows_file.read_text())
    checks = [r["check"] for r in rows]
    failed = [r for r in rows if not r["ok"]]
    assert done.returncode == 0 and not failed, done.stdout[-3000:] + done.stderr[-3000:]
    assert checks[0] == "device" and rows[0]["result"].startswith("cpu (dry run)")
    assert "skipped" in rows[1]["result"]  # the CUDA-only tests, on a machine without CUDA
    assert "CIFAR-10 fast recipe: fast" in checks  # the dry run trains one variant
    assert any(c.startswith("bench loader:") for c in checks)
    assert any(c.startswith("Ray packing") for c in checks)
    assert any(c.startswith("local pool packing: 2 LeNet-5 runs") for c in checks)
    assert "| check | result | seconds |" in done.stdout  # one table, ready for the README
