"""`cnnlab mlflow` against a real local MLflow store, read back with MLflow's client."""

from __future__ import annotations

import os
import sys

import pytest

from cnnlab.cli.app import main

STUDY = """\
[study]
name = "to-mlflow"
dataset = "mnist"
seeds = [0, 1]
baseline = "plain"
[defaults]
data_dir = "{data_dir}"
model = "mlp"
epochs = 2
[[variant]]
name = "plain"
[[variant]]
name = "faster"
optimizer = {{ name = "adam", lr = 0.003 }}
"""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("mlflow-study")
    (root / "s.toml").write_text(STUDY.format(data_dir=data_dir))
    out = root / "out"
    assert main(["run", str(root / "s.toml"), "--out", str(out), "--quiet", "--no-report"]) == 0
    return out


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    mlflow_client = pytest.importorskip("mlflow.tracking").MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, lambda: mlflow_client(tracking_uri=uri)


def runs_of(client, name="to-mlflow"):
    experiment = client.get_experiment_by_name(name)
    return list(client.search_runs([experiment.experiment_id]))


@pytest.mark.slow
def test_each_run_arrives_with_params_metrics_tags_and_artifacts(study_dir, client, capsys):
    uri, make = client
    assert main(["mlflow", str(study_dir), "--tracking-uri", uri]) == 0
    assert "4 runs sent; MLflow experiment 'to-mlflow'" in capsys.readouterr().out
    c = make()
    runs = runs_of(c)
    assert len(runs) == 4
    by_variant = {}
    for r in runs:
        tags = r.data.tags
        assert tags["cnnlab.study"] == "to-mlflow" and tags["cnnlab.export"] == "complete"
        assert tags["cnnlab.provenance.torch"] and len(tags["cnnlab.run_id"]) == 16
        by_variant.setdefault(tags["cnnlab.variant"], []).append(r)
        history = c.get_metric_history(r.info.run_id, "test_acc")
        assert sorted(m.step for m in history) == [1, 2]
        assert r.data.metrics["summary.params"] > 0
        assert r.info.status == "FINISHED"
        files = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert {"curves.png", "summary.json", "metrics.csv", "config.json"} <= files
    assert {r.data.params["optimizer.lr"] for r in by_variant["faster"]} == {"0.003"}
    assert {r.data.params["optimizer.lr"] for r in by_variant["plain"]} == {"0.001"}
    assert {r.data.tags["cnnlab.seed"] for r in by_variant["plain"]} == {"0", "1"}
    # The artifacts sit beside the database, not in the folder the command ran from.
    assert (make().get_experiment_by_name("to-mlflow").artifact_location).startswith(
        "file://" + str(os.path.dirname(uri.removeprefix("sqlite:///")))
    )


def test_exporting_again_adds_nothing_and_a_half_sent_run_is_sent_again(
    study_dir, client, capsys, monkeypatch
):
    uri, make = client
    assert main(["mlflow", str(study_dir), "--tracking-uri", uri, "--quiet"]) == 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where MLflow's own tools look
    assert main(["mlflow", str(study_dir)]) == 0
    assert "0 runs sent, 4 already there" in capsys.readouterr().out
    c = make()
    first = runs_of(c)
    assert len(first) == 4
    cut = first[0]
    c.set_tag(cut.info.run_id, "cnnlab.export", "incomplete")  # as a kill half-way leaves it
    assert main(["mlflow", str(study_dir), "--tracking-uri", uri]) == 0
    assert "1 run sent, 3 already there, 1 of them half-sent before" in capsys.readouterr().out
    again = runs_of(c)
    assert len(again) == 4
    assert {r.data.tags["cnnlab.run_id"] for r in again} == {
        r.data.tags["cnnlab.run_id"] for r in first
    }
    assert all(r.data.tags["cnnlab.export"] == "complete" for r in again)


def test_an_experiment_name_and_missing_mlflow(study_dir, client, monkeypatch, capsys):
    uri, make = client
    assert main(["mlflow", str(study_dir), "--tracking-uri", uri, "--experiment", "mine"]) == 0
    assert len(runs_of(make(), "mine")) == 4
    monkeypatch.setitem(sys.modules, "mlflow", None)
    assert main(["mlflow", str(study_dir), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "needs the mlflow package: pip install -e '.[mlflow]'" in err
    assert len(err.strip().splitlines()) == 1


def test_a_store_mlflow_cannot_open_is_one_line_within_seconds(study_dir, tmp_path, capsys):
    """MLflow retries such stores for minutes; cnnlab says why in one line first."""
    pytest.importorskip("mlflow")
    import socket
    import time

    locked = tmp_path / "locked"
    locked.mkdir()
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    cases = {f"http://127.0.0.1:{port}": "cannot reach the server"}
    if os.geteuid() != 0:  # root writes anywhere: the tmpfs test covers it there
        locked.chmod(0o500)
        cases[f"sqlite:///{locked / 'sub' / 'mlflow.db'}"] = "cannot write in"
        cases[str(locked / "store")] = "cannot write in"
    for uri, fragment in cases.items():
        started = time.perf_counter()
        assert main(["mlflow", str(study_dir), "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and fragment in err and uri in err, err
        assert time.perf_counter() - started < 20


def test_a_read_only_file_system_store_is_one_line(study_dir, tmp_path, capsys):
    pytest.importorskip("mlflow")
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for uri in (f"sqlite:///{mount / 'mlflow.db'}", str(mount / "store")):
            assert main(["mlflow", str(study_dir), "--tracking-uri", uri]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "Read-only file system" in err, err
    finally:
        subprocess.run(["umount", str(mount)], check=False)
