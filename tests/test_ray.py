"""Studies on Ray, on a local instance over loopback: the same results as in-process,
failures recorded once, killed workers and drivers resumed, several nodes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fresh import run_cnnlab
from test_kill_points import outcome
from test_kill_points import reference as reference  # a fixture
from test_kill_points import study_file as study_file  # a fixture

from cnnlab.cli import main
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.runner import run_study
from cnnlab.study.store.database import load_results

# Loopback only, no usage report: set before Ray is imported (cnnlab's import_ray does too).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

from cnnlab.study.run.ray_executor import RayExecutor, RaySettings  # noqa: E402
from cnnlab.study.run.ray_reaper import descendants, living  # noqa: E402

pytestmark = pytest.mark.slow

QUIET = ["--no-report", "--quiet"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def cnnlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``cnnlab ARGS`` in a process of its own (its own Ray instance, its own fate)."""
    return run_cnnlab(list(args), env={"OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


def test_a_local_instance_talks_over_loopback_only(local_ray):
    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_ray_gives_the_in_process_results_bit_for_bit(local_ray, study_file, reference, tmp_path):
    executor = RayExecutor(RaySettings(workers=2, cpus_per_run=1))
    run_study(load_study(study_file), tmp_path / "ray", executor=executor)
    assert outcome(tmp_path / "ray") == reference  # fp32, one thread per run on both sides
    assert len(executor.nodes) == 2  # both runs went through Ray
    # Provenance is taken in the worker, when the run starts there, and reaches the store.
    for run in load_results(tmp_path / "ray").runs:
        assert run.provenance is not None and run.provenance == run.summary.provenance
        assert run.provenance.device.startswith("cpu fp32") and run.provenance.host
        assert run.summary.run_id == run.run_id


def test_a_run_that_fails_is_recorded_once_and_not_retried(local_ray, study_file, tmp_path):
    text = study_file.read_text().replace(
        'name = "mlp"\nmodel = "mlp"',
        'name = "mlp"\nmodel = "mlp"\noptimizer = { name = "sgd", lr = 1e6, momentum = 0.9 }',
    )
    path = tmp_path / "diverges.toml"
    path.write_text(text)
    run_study(load_study(path), tmp_path / "out", executor=RayExecutor(RaySettings(workers=2)))
    with sqlite3.connect(tmp_path / "out" / "study.sqlite") as conn:
        rows = dict(conn.execute("SELECT variant, status || ' ' || attempts FROM runs"))
    assert rows == {"mlp": "failed 1", "small mlp": "done 1"}


def test_killed_workers_are_replaced_and_their_runs_resume(study_file, reference, tmp_path):
    # Each worker process SIGKILLs itself at its 2nd checkpoint (the end of its run's last
    # epoch); the replacements resume both runs from their checkpoints and finish them.
    out = tmp_path / "out"
    args = ["run", str(study_file), "--out", str(out), "--executor", "ray", "--workers", "2"]
    job = cnnlab(*args, *QUIET, env={"CNNLAB_KILL_AT": "checkpoint@2"})
    assert job.returncode == 0, job.stderr
    assert outcome(out) == reference
    with sqlite3.connect(out / "study.sqlite") as conn:
        assert conn.execute("SELECT SUM(attempts) FROM runs").fetchone()[0] == 2 + 2


def test_a_killed_driver_resumes_with_the_same_command(local_ray, study_file, reference, tmp_path):
    # The driver SIGKILLs itself when it has stored the 2nd of the study's 4 epoch rows
    # (its workers never reach that point): some run is always left half-done.
    out = tmp_path / "out"
    args = ["run", str(study_file), "--out", str(out), *QUIET, "--executor", "ray"]
    started: dict[int, int] = {}  # every process below the driver: pid -> start time
    job = run_cnnlab(
        [*args, "--workers", "2"],
        env={"OMP_NUM_THREADS": "1", "CNNLAB_KILL_AT": "driver-epoch@2"},
        while_running=lambda pid: started.update(descendants(pid)),
    )
    assert job.returncode == -signal.SIGKILL, job.stderr
    # Ray's agents and workers would live on for a minute; the reaper ends them at once.
    assert len(started) >= 5, started  # GCS, raylet, agents, two workers, the reaper
    deadline = time.monotonic() + 10
    while (left := living(started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes()[:60] for pid in left]
    assert not left, f"left running after the driver was killed: {commands}"
    with sqlite3.connect(out / "study.sqlite") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM runs")]
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 2
    assert statuses.count("done") < 2
    # The same command again, here: it finds this process's Ray running and uses it.
    assert main([*args, "--workers", "2"]) == 0
    assert outcome(out) == reference


def test_a_ray_node_process_killed_mid_study_is_one_line_and_the_same_command_resumes(
    local_ray, study_file, tmp_path
):
    """Killing the node's dashboard agent (the fault probe's case) takes the node down."""
    # Epochs enough that the study outlasts the time Ray takes to see its node gone: with
    # the shared study's two, a loaded machine sometimes finished before (exit 0).
    longer = tmp_path / "longer.toml"
    longer.write_text(study_file.read_text().replace("epochs = 2", "epochs = 30"))
    out = tmp_path / "out"
    args = ["run", str(longer), "--out", str(out), *QUIET, "--executor", "ray"]
    killed: list[int] = []

    def kill_the_agent_after_the_first_epoch(driver: int) -> None:
        if killed or not (out / "study.sqlite").exists():
            return
        try:
            with contextlib.closing(sqlite3.connect(out / "study.sqlite")) as conn:
                if conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 0:
                    return
        except sqlite3.OperationalError:  # the driver has not made its tables yet
            return
        for pid in descendants(driver):
            with contextlib.suppress(OSError):
                if b"DashboardAgent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

    job = run_cnnlab(
        [*args, "--workers", "2"],
        env={"OMP_NUM_THREADS": "1"},
        while_running=kill_the_agent_after_the_first_epoch,
    )
    assert killed, "the study ended before its first epoch row could be seen"
    assert job.returncode == 1 and "Traceback" not in job.stderr, job.stderr
    assert "Ray lost a process it needs" in job.stderr.strip().splitlines()[-1]
    with sqlite3.connect(out / "study.sqlite") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM runs")]
    assert "running" not in statuses and statuses.count("done") < 2, statuses
    assert main([*args, "--workers", "2"]) == 0
    with sqlite3.connect(out / "study.sqlite") as conn:
        assert [s for (s,) in conn.execute("SELECT status FROM runs")] == ["done", "done"]
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 2 * 30


def test_sigterm_stops_a_ray_study_like_ctrl_c_and_says_nothing_of_rays_token(
    local_ray, study_file, tmp_path
):
    # Ray's driver installs a SIGTERM handler of its own that dies on the spot; cnnlab's must
    # stay in charge: one line, exit 143, runs marked interrupted, the rerun finishing them.
    out = tmp_path / "out"
    args = ["run", str(study_file), "--out", str(out), *QUIET, "--executor", "ray"]
    env = {"CNNLAB_KILL_AT": "driver-epoch@2", "CNNLAB_KILL_SIGNAL": "TERM"}
    job = cnnlab(*args, "--workers", "2", env=env)
    assert job.returncode == 143, job.stderr
    assert "terminated (SIGTERM)" in job.stderr and "Traceback" not in job.stderr
    with sqlite3.connect(out / "study.sqlite") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM runs")]
    assert "interrupted" in statuses and "running" not in statuses, statuses
    # Ray announces the token authentication it enables for a new local instance; cnnlab
    # keeps that authentication and leaves the notice out of the user's terminal.
    assert "Token authentication" not in job.stdout + job.stderr
    assert main([*args, "--workers", "2"]) == 0  # here: on this process's Ray


def test_without_ray_the_executor_flag_says_how_to_install_it(
    study_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    assert main(["run", str(study_file), "--out", str(out), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_cuda_run_without_gpus_per_run_is_refused_before_anything_starts(study_file, tmp_path):
    from cnnlab.errors import CnnlabError

    runs = load_study(study_file).plan(tmp_path)
    runs = [replace(r, config=r.config.model_copy(update={"device": "cuda"})) for r in runs]
    with pytest.raises(CnnlabError, match="gets a GPU only with --gpus-per-run"):
        RayExecutor(RaySettings(workers=1)).check(runs)


def test_ray_flags_without_the_ray_executor_are_refused(study_file, tmp_path, capsys):
    args = ["run", str(study_file), "--out", str(tmp_path / "o"), "--address", "auto"]
    assert main(args) == 2
    assert "--address need --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_an_address_a_new_local_instance_starts_even_beside_a_running_one(monkeypatch):
    # ray.init() with no address joins the last `ray start` instance of this machine, at
    # that instance's size; --workers would then be ignored or refused.
    executor = RayExecutor(RaySettings(workers=2, cpus_per_run=1))
    asked: dict[str, object] = {}
    monkeypatch.setattr(executor.ray, "init", lambda **kwargs: asked.update(kwargs))
    executor._start()
    assert asked["address"] == "local" and asked["num_cpus"] == 2
    executor = RayExecutor(RaySettings(address="127.0.0.1:6379"))
    executor._start()
    assert asked["address"] == "127.0.0.1:6379"


def test_a_search_trains_trials_at_once_on_ray_and_prunes_at_the_epoch_judged(
    local_ray, data_dir, tmp_path, monkeypatch
):
    import optuna
    from test_search import search_with_trial_1_pruned

    executor = RayExecutor(RaySettings(workers=2))
    out, trials, epochs = search_with_trial_1_pruned(executor, data_dir, tmp_path, monkeypatch)
    assert {n: t["state"] for n, t in trials.items()} == {
        0: "complete", 1: "pruned", 2: "complete", 3: "complete"
    }  # fmt: skip
    assert epochs[trials[1]["run_id"]] == 1  # stopped at the epoch its pruner judged
    assert all(epochs[t["run_id"]] == 2 for n, t in trials.items() if n != 1)
    assert {t["run_id"] for t in trials.values()} <= set(executor.nodes)  # trained on Ray
    search = optuna.load_study(study_name="search-demo", storage=f"sqlite:///{out}/search.sqlite3")
    first, second = search.trials[:2]
    assert second.datetime_start < first.datetime_complete  # two trials at once
    results = load_results(out)
    assert results.variants == ["default", "search #1"]
    assert sum(r.summary is not None for r in results.runs) == 4  # confirmed over 2 seeds


def test_runs_spread_over_the_nodes_of_a_cluster(study_file, reference, tmp_path):
    # Last in this file: it stops the module's local instance to join a cluster of its own.
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, configure_logging=False, log_to_driver=False)
        executor = RayExecutor(RaySettings(address=cluster.address))
        run_study(load_study(study_file), tmp_path / "cluster", executor=executor)
        assert len(set(executor.nodes.values())) == 2  # one run on each node
        assert outcome(tmp_path / "cluster") == reference  # the study folder is shared
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_losing_one_of_its_processes_is_one_line_saying_the_same_command_resumes(monkeypatch):
    """A node's agent killed mid-study surfaced as an 82-line ActorDiedError traceback."""
    from cnnlab.errors import RunFailed

    executor = RayExecutor(RaySettings(workers=2, cpus_per_run=1))
    monkeypatch.setattr(executor.ray, "init", lambda **kwargs: None)
    monkeypatch.setattr(executor.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(executor.ray, "shutdown", lambda: None)
    died = executor.ray.exceptions.ActorDiedError()
    lost = r"Ray lost a process it needs .*run the same command again"
    with pytest.raises(RunFailed, match=lost), executor.session():
        raise died
