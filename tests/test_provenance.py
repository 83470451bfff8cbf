"""Provenance: what a run trained with, recorded when it starts."""

from __future__ import annotations

import json
import platform
import subprocess

import torch

from cnnlab.evaluation.precision import resolve_precision
from cnnlab.records import Provenance, RunSummary
from cnnlab.training import provenance as prov


def test_provenance_names_versions_device_host_and_the_git_commit_of_the_working_dir(
    tmp_path, monkeypatch
):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    prov.git_state.cache_clear()
    p = prov.collect_provenance(resolve_precision("fp32", "cpu"))
    assert (p.git_commit, p.git_dirty) == (head, False)
    assert p.torch == torch.__version__ and p.python == platform.python_version()
    assert p.device.startswith("cpu fp32") and p.cpu and p.host
    assert p.started.endswith("+00:00")  # UTC, ISO 8601
    (repo / "a.txt").write_text("two\n")
    prov.git_state.cache_clear()
    assert prov.collect_provenance(resolve_precision("fp32", "cpu")).git_dirty is True

    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    prov.git_state.cache_clear()
    p = prov.collect_provenance(resolve_precision("fp32", "cpu"))
    assert (p.git_commit, p.git_dirty) == (None, None)
    prov.git_state.cache_clear()


def test_provenance_survives_json_and_old_summaries_read_without_it():
    p = Provenance("0.6", "3.11.2", "2.14", None, None, "cpu fp32", "x", "h", "linux", "now")
    assert Provenance.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    old = {
        "model": "mlp", "dataset": "mnist", "seed": 0, "epochs": 1, "stopped_early": False,
        "final": {"train_loss": 1.0, "train_acc": 0.5, "val_loss": None, "val_acc": None,
                  "test_loss": 1.0, "test_acc": 0.5},
        "best_test_acc_optimistic": 0.5, "best_test_epoch": 1, "params": 1,
        "macs_per_image": 1, "input_shape": [1, 28, 28], "classes": ["0", "1"],
        "precision": "fp32", "train_seconds": 1.0, "wall_seconds": 1.0, "images_per_s": 1.0,
    }  # fmt: skip
    summary = RunSummary.from_dict(old)
    assert summary.provenance is None and summary.run_id is None
    assert "provenance" not in summary.to_dict()  # nothing invented when written back
    summary.provenance = p
    assert RunSummary.from_dict(summary.to_dict()).provenance == p


def test_a_plain_train_run_records_provenance_and_its_run_id(data_dir, tmp_path):
    from cnnlab.config.schema import make_config
    from cnnlab.training.loop import train

    cfg = make_config({"dataset": "mnist", "model": "mlp", "epochs": 1, "data_dir": str(data_dir)})
    record = train(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["provenance"]["device"].startswith("cpu")
    assert written["run_id"] == record.summary.run_id and len(written["run_id"]) == 16
    assert "data_dir" not in written["identity"]["settings"]


def test_provenance_without_git_installed_is_none_not_an_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    prov.git_state.cache_clear()
    assert prov.git_state("/") == (None, None)
    prov.git_state.cache_clear()
