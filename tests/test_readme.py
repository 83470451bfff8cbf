"""Every command in the README's (and docs/'s) ```bash blocks runs as written, in order, from a fresh
folder with small generated datasets, and then every ```python block (the blocks marked
"not run by tests/test_readme.py" need a cluster or a GPU, are the set-up itself, or take
an hour)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import write_learnable_mnist
from fakedata import write_cifar10_batches
from fresh import run_cnnlab

from cnnlab.cli import main

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


def readme_python(text: str) -> list[str]:
    """The runnable ```python blocks, whole."""
    blocks = []
    for match in re.finditer(r"(?m)^```python\n(.*?)^```", text, re.S):
        before = text[: match.start()].rstrip().splitlines()
        if not (before and before[-1].startswith(SKIP_MARK)):
            blocks.append(match.group(1))
    return blocks


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
    (work / "tests").mkdir()
    (work / "tests" / "data").symlink_to(ROOT / "tests" / "data")  # the predict examples' images
    return work


def run_in_process(command: str, cwd: Path) -> tuple[int, str]:
    """``cnnlab ARGS [> FILE]`` through the real entry point, in this process (a
    subprocess per line would pay torch's import 23 times); the exit status and stdout."""
    words = shlex.split(command)
    target = None
    if ">" in words:
        words, target = words[: words.index(">")], words[words.index(">") + 1]
    assert words[0] == "cnnlab", command
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(words[1:])
    if target is not None:
        (cwd / target).write_text(out.getvalue())
    return code, out.getvalue()


def _run_command(command: str, workdir: Path) -> str:
    if "--executor ray" in command:  # its own process: Ray starts and stops with it
        done = run_cnnlab(shlex.split(command)[1:], cwd=workdir, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout
    code, printed = run_in_process(command, workdir)
    assert code == 0, f"{command}\n{printed[-3000:]}"
    return printed


def _run_python(block: str, where: str) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, where, "exec"), {"__name__": "readme"})
    assert "%" in printed.getvalue()


@pytest.fixture(scope="module")
def in_workdir(workdir, tmp_path_factory):
    """The examples' folder and environment, for the module: set up before the autouse
    fixtures of conftest.py, so what they set for each test is set here too."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("CNNLAB_FONTS", "matplotlib")
        if "CNNLAB_CACHE" not in os.environ:
            monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cnnlab-cache"))
        monkeypatch.chdir(workdir)
        monkeypatch.setenv("CNNLAB_DATA", str(workdir.parent / "data"))
        monkeypatch.setenv("COLUMNS", "160")
        # Studies train in process (a pool's start costs each `cnnlab run` seconds of CPU),
        # except in docs/scale-out.md, whose examples are the pool and Ray themselves;
        # tests/test_local_executor.py tests the pool.
        monkeypatch.setenv("CNNLAB_WORKERS", "1")
        # digits-wild's printed digits at a fraction of their number (the commands run here).
        monkeypatch.setattr("cnnlab.data.digits_wild.PRINTED_TRAIN", 200)
        monkeypatch.setattr("cnnlab.data.digits_wild.PRINTED_TEST", 100)
        yield workdir


@pytest.fixture(scope="module")
def readme_ran(in_workdir) -> dict[str, str]:
    """The README's examples, run once, in order: command -> what it printed (the docs'
    examples use what they made, whichever test runs first)."""
    printed = {}
    for command in readme_commands((ROOT / "README.md").read_text()):
        printed[command] = _run_command(command, in_workdir)
    for block in readme_python((ROOT / "README.md").read_text()):
        _run_python(block, "README.md")
    return printed


@pytest.mark.slow
def test_every_readme_example_runs_as_written(in_workdir, readme_ran):
    compared = [out for command, out in readme_ran.items() if command.startswith("cnnlab compare")]
    assert compared and all("counted once, in A" in " ".join(out.split()) for out in compared)
    with open(in_workdir / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)  # 3 variants x 2 seeds
    assert (in_workdir / "runs" / "by-hand" / "report.html").is_file()
    assert (in_workdir / "lenet5.onnx").is_file() and (in_workdir / "predictions.jsonl").is_file()


# The pages in the order a reader meets them; their examples use what the README's made.
DOCS = ["studies.md", "settings.md", "sequential.md", "search.md", "report.md",
        "scale-out.md", "interop.md", "models.md", "digits-wild.md", "design.md", "measured.md"]  # fmt: skip


def test_every_docs_page_is_in_the_reading_order_and_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert sorted(DOCS) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert all(f"](docs/{page})" in readme for page in DOCS)


@pytest.mark.slow
def test_every_docs_example_runs_as_written(in_workdir, readme_ran):
    """The ```bash and ```python blocks of docs/*.md, after the README's (they use what its
    examples made)."""
    ran = 0
    for page in DOCS:
        text = (ROOT / "docs" / page).read_text()
        with pytest.MonkeyPatch.context() as monkeypatch:
            if page == "scale-out.md":
                monkeypatch.delenv("CNNLAB_WORKERS")  # the default: local worker processes
            for command in readme_commands(text):
                _run_command(command, in_workdir)
                ran += 1
        for block in readme_python(text):
            _run_python(block, page)
    assert ran >= 7
    assert (in_workdir / "runs" / "seed001-ray" / "report.html").is_file()
