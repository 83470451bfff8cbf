"""The fault corpus: every bad input gets one clear line, the right exit status, no
traceback, no raw warning, and leaves the case folder (outputs and caches) untouched.

The cases are generated (tests/corpus_data.py, tests/corpus_cli.py); `python
tests/test_fault_corpus.py [SRC]` runs them as `cnnlab` subprocesses against the
package in SRC (default: the installed one) and counts tracebacks, which is how the
figures before and after issue 15 were measured.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from corpus_case import Case
from corpus_cli import CASES as CLI_CASES
from corpus_data import CASES as DATA_CASES

from cnnlab.cli.app import main

CASES: list[Case] = DATA_CASES + CLI_CASES


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with a hash of its content ("dir" for folders)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():  # a link (a loop among them) is its target's name
            tree[rel] = "link:" + os.readlink(path)
            continue
        tree[rel] = "dir" if path.is_dir() else hashlib.sha1(path.read_bytes()).hexdigest()
    return tree


def changed(before: dict[str, str], after: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    paths = set(before) | set(after)
    return sorted(
        p
        for p in paths
        if before.get(p) != after.get(p)
        and not any(p == a or p.startswith(a + "/") for a in allowed)
    )


def test_the_corpus_is_large_and_its_names_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.bomb_limit is not None:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", case.bomb_limit)
    argv = case.make()
    capsys.readouterr()
    before = snapshot(tmp_path)
    with warnings.catch_warnings(record=True) as raw_warnings:
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    text = " ".join(err.split())
    assert "Traceback" not in out + err
    assert code == case.code, f"exit {code}, stderr: {err}"
    if case.code == 2:
        assert len(lines) == 1 and lines[0].startswith("cnnlab: error:"), err
    else:
        assert lines and all(line.startswith("cnnlab: ") for line in lines), err
    missing = [f for f in case.says if f not in text]
    assert not missing, f"{missing} not in {err!r}"
    shown = [str(w.message) for w in raw_warnings if not issubclass(w.category, DeprecationWarning)]
    assert not shown, f"warnings printed raw: {shown}"
    assert changed(before, snapshot(tmp_path), case.writes) == []
    assert not Path("pwned").exists()


def count_tracebacks(src: str | None) -> None:
    """Run every case as a subprocess and print its exit status and whether it crashed."""
    import tempfile

    env = dict(os.environ, PYTHONPATH=src) if src else dict(os.environ)
    crashed = wrong = 0
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            os.chdir(folder)
            case_env = dict(env, CNNLAB_CACHE=f"{folder}/cache", CNNLAB_DATA=f"{folder}/data")
            case_env.update(case.env)
            argv = case.make()
            lower = f"PIL.Image.MAX_IMAGE_PIXELS = {case.bomb_limit}; " if case.bomb_limit else ""
            code = (
                f"import runpy, PIL.Image; {lower}runpy.run_module('cnnlab', run_name='__main__')"
            )
            result = subprocess.run(
                [sys.executable, "-c", code, *argv],
                capture_output=True,
                text=True,
                env=case_env,
                timeout=300,
            )
            traceback = "Traceback" in result.stderr
            crashed += traceback
            wrong += result.returncode != case.code
            last = (result.stderr.strip().splitlines() or [""])[-1][:90]
            mark = "TRACEBACK" if traceback else "" if result.returncode == case.code else "WRONG"
            print(f"{case.name:28} exit {result.returncode} (want {case.code}) {mark:9} {last}")
    print(f"{crashed} of {len(CASES)} cases gave a traceback; {wrong} a wrong exit status")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    count_tracebacks(sys.argv[1] if len(sys.argv) > 1 else None)
