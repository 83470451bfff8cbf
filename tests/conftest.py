"""Shared fixtures: isolated caches and small learnable datasets in canonical formats."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import idx_bytes

REAL_DATA = Path(os.environ["CNNLAB_DATA"]) if os.environ.get("CNNLAB_DATA") else None

# Under pytest-xdist (scripts/test.sh runs one worker per core) each worker's torch gets
# its share of the cores: more threads than cores make every test slower.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "").isdigit():
    torch.set_num_threads(
        max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    )


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded-folder caches go to a temporary folder, never the user's."""
    if "CNNLAB_CACHE" not in os.environ:
        monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cnnlab-cache"))


def learnable_digits(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is a bright bar at a class-specific position: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.int64)
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + int(label) * (size - 4) // 10
        images[i, row : row + 2, 4 : size - 4] = 255
    return images, labels


def write_learnable_mnist(directory: Path, n_train: int = 600, n_test: int = 200) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = learnable_digits(n, seed)
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(labels.astype(np.uint8)))
        )
    return directory


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a small learnable `mnist` in the canonical layout."""
    root = tmp_path_factory.mktemp("data")
    write_learnable_mnist(root / "mnist")
    return root


@pytest.fixture
def real_data() -> Path:
    if REAL_DATA is None or not (REAL_DATA / "mnist").is_dir():
        pytest.skip("real data not found: set CNNLAB_DATA to a folder holding mnist/")
    return REAL_DATA


@pytest.fixture
def gpus(monkeypatch):
    """A machine with GPUs of the given compute capabilities (cuda:0, cuda:1, ...)."""

    def install(*capabilities: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
        monkeypatch.setattr(
            torch.cuda, "get_device_capability",
            lambda device=None: capabilities[torch.device(device).index or 0],
        )  # fmt: skip
        # What the old policy asked: True even on a V100, where bf16 is emulated.
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return install


@pytest.fixture(autouse=True)
def _bundled_fonts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Printed digits from matplotlib's fonts only: checking every font of the machine
    takes half a minute per fresh cache (tests/test_fonts.py covers the discovery)."""
    monkeypatch.setenv("CNNLAB_FONTS", "matplotlib")


@pytest.fixture(autouse=True)
def _one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Studies run in process unless a test asks for workers: a worker's start (a fresh
    interpreter importing torch) would cost seconds in each of the many tiny studies
    here. tests/test_local_executor.py and docs/scale-out.md's examples run the default pool."""
    monkeypatch.setenv("CNNLAB_WORKERS", "1")
