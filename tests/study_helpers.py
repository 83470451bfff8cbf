"""What the study tests share: tiny study files, one thread, no curve plots, and the
`cnnlab` command in a process of its own."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fresh import run_cnnlab

STUDIES = Path(__file__).resolve().parent.parent / "studies"
TINY_DEFAULTS = """
[defaults]
epochs = 1
batch_size = 50
eval_batch_size = 200
precision = "fp32"
device = "cpu"
optimizer = { name = "adam", lr = 1e-3 }
"""

GOOD_VARIANTS = """
[[variant]]
name = "a"
model = "mlp"

[[variant]]
name = "+dropout"
model = "lenet5"
"""


def write_study(
    folder: Path, body: str, name: str = "study.toml", header: str | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = header or '[study]\nname = "tiny"\ndataset = "mnist"\nseeds = [0, 1]\n'
    path = folder / name
    path.write_text(header + textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, two torch threads that wait for each
    other make these tiny models tens of times slower. Subprocesses get OMP_NUM_THREADS=1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_curve_plots(monkeypatch):
    """In this process, train() skips curves.png (matplotlib costs ~1 s a run on a busy
    machine); the `cnnlab run` subprocesses still write it (checked end to end)."""
    import cnnlab.plots

    monkeypatch.setattr(cnnlab.plots, "plot_run_curves", lambda *args, **kwargs: None)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def cnnlab_process(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def cnnlab(*args: str) -> subprocess.CompletedProcess:
    """The command in a process of its own (tests/fresh.py)."""
    return run_cnnlab(list(args), env={"COLUMNS": "200", "OMP_NUM_THREADS": "1"})


def db_rows(study_dir: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(study_dir / "study.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
