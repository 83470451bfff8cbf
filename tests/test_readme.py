"""Every command in the README's ```bash blocks runs as written, in order, from a fresh
folder with small generated datasets (the blocks marked "not run by
tests/test_readme.py" need a cluster, are the set-up itself, or take an hour)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_learnable_mnist
from fakedata import write_cifar10_batches

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARK = "<!-- not run by tests/test_readme.py"


def readme_commands(text: str) -> list[str]:
    """The commands of the runnable bash blocks: continuation lines joined."""
    commands: list[str] = []
    for match in re.finditer(r"(?m)^```bash\n(.*?)^```", text, re.S):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(SKIP_MARK):
            continue
        joined = re.sub(r"\\\n\s*", "", match.group(1))
        for line in joined.splitlines():
            code = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if code:
                commands.append(code)
    return commands


def test_the_readme_blocks_parse_into_commands():
    commands = readme_commands((ROOT / "README.md").read_text())
    assert len(commands) >= 20
    assert not any("..." in c for c in commands)  # nothing left for the reader to fill in
    assert any(c.startswith("cnnlab train --out runs/lenet5 --resume") for c in commands)
    assert not any(c.startswith(("ray start", "bash scripts/")) for c in commands)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    data = root / "data"
    write_learnable_mnist(data / "mnist", n_train=600, n_test=200)
    write_learnable_mnist(data / "fashion-mnist", n_train=600, n_test=200)
    write_cifar10_batches(data / "cifar10", n_per_batch=120)  # 600 train: batch 512 fits
    work = root / "work"
    work.mkdir()
    for name in ("studies", "models"):
        (work / name).symlink_to(ROOT / name)
    return work


def test_every_readme_example_runs_as_written(workdir):
    env = {
        **os.environ,
        "CNNLAB_DATA": str(workdir.parent / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "160",
    }
    for command in readme_commands((ROOT / "README.md").read_text()):
        done = subprocess.run(
            ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr[-3000:]}"
        if command.startswith("cnnlab compare"):
            assert "counted once, in A" in " ".join(done.stdout.split()), done.stdout
    with open(workdir / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)  # 3 variants x 2 seeds
    assert (workdir / "runs" / "by-hand" / "report.html").is_file()
    assert (workdir / "runs" / "seed001-ray" / "report.html").is_file()
    assert (workdir / "lenet5.onnx").is_file() and (workdir / "predictions.jsonl").is_file()
