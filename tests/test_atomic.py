"""Atomic writes, and the clean-up of what a kill inside one leaves behind."""

from __future__ import annotations

import os
import tempfile

import pytest

from cnnlab.atomic import atomic_path, atomic_write_text, remove_stale_temporaries


def leftover(folder, target: str, suffix: str = "") -> str:
    """A temporary file named as atomic_path names them, as a kill leaves it."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target}.", suffix=suffix + ".tmp")
    os.close(fd)
    return os.path.basename(name)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_stale_temporaries_of_our_naming_are_removed_and_nothing_else(tmp_path):
    ours = [leftover(tmp_path, "checkpoint.pt", ".pt"), leftover(tmp_path, "report.html")]
    others = ["keep.tmp", ".hidden", "checkpoint.pt", ".x.tmp"]
    for name in others:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    nested = leftover(tmp_path / "sub", "metrics.csv")
    assert remove_stale_temporaries(tmp_path, older_than=3600) == 0  # too fresh to be stale
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted([*others, "sub"])
    assert os.listdir(tmp_path / "sub") == [nested]  # only the folder named
    assert set(ours).isdisjoint(os.listdir(tmp_path))
    assert remove_stale_temporaries(tmp_path / "missing") == 0
