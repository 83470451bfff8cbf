"""Studies on local worker processes, the default: the in-process results bit for bit,
failures recorded once, killed workers and drivers resumed, no process left behind."""

from __future__ import annotations

import multiprocessing.forkserver
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from fresh import run_cnnlab
from test_kill_points import outcome
from test_kill_points import reference as reference  # a fixture
from test_kill_points import study_file as study_file  # a fixture

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.local_executor import Layout, LocalExecutor, auto_layout
from cnnlab.study.run.local_pool import WORKER_NAME, LocalPool
from cnnlab.study.run.runner import run_study
from cnnlab.study.store.database import load_results

pytestmark = pytest.mark.slow

QUIET = ["--no-report", "--quiet"]


def workers_alive() -> set[int]:
    """The pids of every cnnlab worker process on this machine, by the name a worker
    gives itself (forked or spawned, its command line is multiprocessing's)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                name = (proc / "comm").read_bytes().strip()
            except OSError:
                continue
            if name == WORKER_NAME:
                pids.add(int(proc.name))
    return pids


def cnnlab(*args: str, env: dict[str, str] | None = None, **kwargs):
    return run_cnnlab(list(args), env={"CNNLAB_WORKERS": "2", **(env or {})}, timeout=300, **kwargs)


def gone(before: set[int], wait_s: float = 10.0) -> bool:
    """Whether every worker started since ``before`` has ended (within ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while workers_alive() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    return not (workers_alive() - before)


def test_auto_is_a_one_thread_run_per_core_or_two_runs_per_gpu():
    assert auto_layout(None, None, 2, 0) == Layout(2, 1)
    assert auto_layout(None, None, 16, 0) == Layout(16, 1)
    assert auto_layout(4, None, 16, 0) == Layout(4, 4)  # the cores shared out
    assert auto_layout(None, 2, 16, 0) == Layout(8, 2)
    assert auto_layout(None, None, 16, 2) == Layout(4, 1, gpus=2)
    assert auto_layout(1, None, 1, 0) == Layout(1, 1)


def test_the_flags_choose_the_executor(study_file, monkeypatch):
    from cnnlab.cli.app import build_parser
    from cnnlab.cli.run_command import make_executor
    from cnnlab.study.run.executor import InProcessExecutor

    monkeypatch.delenv("CNNLAB_WORKERS", raising=False)
    monkeypatch.setattr("cnnlab.study.run.local_executor.cores", lambda: 4)

    def chosen(*flags: str):
        return make_executor(build_parser().parse_args(["run", str(study_file), *flags]), False)

    assert isinstance(chosen("--workers", "1"), InProcessExecutor)
    assert chosen("--workers", "1").threads is None  # torch's default: today's behaviour
    assert chosen("--executor", "inprocess", "--threads-per-run", "1").threads == 1
    assert chosen().layout == Layout(4, 1) and chosen("--workers", "auto").layout == Layout(4, 1)
    assert chosen("--workers", "2").layout == Layout(2, 2)
    monkeypatch.setenv("CNNLAB_WORKERS", "1")
    assert isinstance(chosen(), InProcessExecutor)
    assert chosen("--workers", "3").layout == Layout(3, 1)  # a flag beats the environment


def test_workers_are_spread_over_the_gpus(monkeypatch):
    from cnnlab.study.run import local_pool

    started = []

    class Recorded:
        sentinel = pid = None

        def __init__(self, target, args, name, daemon):
            started.append(args[2])  # the GPU the worker will see

        def start(self):
            pass

    pool = local_pool.LocalPool(threads=1, gpus=2)
    monkeypatch.setattr(pool.context, "Process", Recorded)
    pool.start(5)
    assert started == ["0", "1", "0", "1", "0"]
    # A CUDA runtime touched in a process that then forks fails in the child: GPU workers
    # are fresh interpreters; CPU workers fork from the server that imported torch once.
    assert pool.context.get_start_method() == "spawn"
    monkeypatch.delenv("CNNLAB_WORKER_START", raising=False)
    assert local_pool.LocalPool(threads=1).context.get_start_method() == "forkserver"
    monkeypatch.setenv("CNNLAB_WORKER_START", "spawn")
    assert local_pool.LocalPool(threads=1).context.get_start_method() == "spawn"
    monkeypatch.setenv("CNNLAB_WORKER_START", "fork")
    with pytest.raises(ConfigError, match=r"CNNLAB_WORKER_START='fork' .* forkserver or spawn"):
        local_pool.LocalPool(threads=1)


def test_local_workers_give_the_in_process_results_bit_for_bit(study_file, reference, tmp_path):
    before = workers_alive()
    executor = LocalExecutor(Layout(2, 1))
    run_study(load_study(study_file), tmp_path / "local", executor=executor)
    assert outcome(tmp_path / "local") == reference  # fp32, one thread per run on both sides
    assert sorted(executor.nodes.values()) == ["local worker 0", "local worker 1"]
    for run in load_results(tmp_path / "local").runs:
        assert run.provenance is not None and run.provenance == run.summary.provenance
    assert gone(before)  # the session's end stopped its workers


def test_a_run_that_fails_is_recorded_once_and_not_retried(study_file, tmp_path):
    text = study_file.read_text().replace(
        'name = "mlp"\nmodel = "mlp"',
        'name = "mlp"\nmodel = "mlp"\noptimizer = { name = "sgd", lr = 1e6, momentum = 0.9 }',
    )
    path = tmp_path / "diverges.toml"
    path.write_text(text)
    run_study(load_study(path), tmp_path / "out", executor=LocalExecutor(Layout(2, 1)))
    with sqlite3.connect(tmp_path / "out" / "study.sqlite") as conn:
        rows = dict(conn.execute("SELECT variant, status || ' ' || attempts FROM runs"))
    assert rows == {"mlp": "failed 1", "small mlp": "done 1"}


def test_killed_workers_are_replaced_and_their_runs_resume(
    study_file, reference, tmp_path, monkeypatch
):
    # Each worker SIGKILLs itself at its 2nd checkpoint (its run's last epoch, not yet
    # stored); new workers resume both runs from their checkpoints and finish them. The
    # fork server runs before the setting is made: a worker takes the driver's
    # environment of when it starts, not the server's.
    multiprocessing.forkserver.ensure_running()
    monkeypatch.setenv("CNNLAB_KILL_AT", "checkpoint@2")
    out = tmp_path / "out"
    run_study(load_study(study_file), out, executor=LocalExecutor(Layout(2, 1)))
    assert outcome(out) == reference
    with sqlite3.connect(out / "study.sqlite") as conn:
        assert conn.execute("SELECT SUM(attempts) FROM runs").fetchone()[0] == 2 + 2


class DeathsTogether(LocalPool):
    """A pool that tells the driver which workers ended only once none is busy: two
    workers dying at once, as CI met it by chance."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held = []

    def wait(self, timeout):
        events, ended = super().wait(timeout)
        self.held += ended
        if any(w.run_id is not None and not w.dead for w in self.workers):
            return events, []
        ended, self.held = self.held, []
        return events, ended


def test_workers_dying_at_once_are_each_replaced(study_file, reference, tmp_path, monkeypatch):
    # Each replacement is a new worker: handing the first's out again sent both runs to it
    # and the driver lost one (left "running").
    monkeypatch.setattr("cnnlab.study.run.local_executor.LocalPool", DeathsTogether)
    monkeypatch.setenv("CNNLAB_KILL_AT", "checkpoint@2")
    out = tmp_path / "out"
    run_study(load_study(study_file), out, executor=LocalExecutor(Layout(2, 1)))
    assert outcome(out) == reference


def test_a_killed_driver_takes_its_workers_and_another_executor_finishes(
    study_file, reference, tmp_path
):
    from cnnlab.study.run.ray_reaper import descendants, living

    before = workers_alive()
    out = tmp_path / "out"
    args = ["run", str(study_file), "--out", str(out), *QUIET]
    started: dict[int, int] = {}  # every process below the driver: pid -> start time
    job = cnnlab(
        *args,
        env={"CNNLAB_KILL_AT": "driver-epoch@2"},
        while_running=lambda pid: started.update(descendants(pid)),
    )
    assert job.returncode == -signal.SIGKILL, job.stderr
    assert gone(before)  # the workers died with their driver
    assert len(started) >= 2, started  # two workers (and the fork server they forked from)
    deadline = time.monotonic() + 10
    while living(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not living(started)  # the fork server too: nothing is left behind
    with sqlite3.connect(out / "study.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 2
    # The same study finished in process, at the same thread count: the same runs.
    assert main([*args, "--workers", "1", "--threads-per-run", "1"]) == 0
    assert outcome(out) == reference


@pytest.mark.parametrize(("signal_name", "status"), [("TERM", 143), ("INT", 130)])
def test_sigterm_and_ctrl_c_stop_every_worker_and_leave_runs_resumable(
    study_file, tmp_path, signal_name, status
):
    before = workers_alive()
    out = tmp_path / "out"
    args = ["run", str(study_file), "--out", str(out), *QUIET]
    env = {"CNNLAB_KILL_AT": "driver-epoch@2", "CNNLAB_KILL_SIGNAL": signal_name}
    job = cnnlab(*args, env=env)
    assert job.returncode == status, job.stderr
    assert "Traceback" not in job.stderr and len(job.stderr.strip().splitlines()) == 1
    assert "rerun the same command to continue" in job.stderr
    assert gone(before)
    with sqlite3.connect(out / "study.sqlite") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM runs")]
    assert "interrupted" in statuses and "running" not in statuses, statuses
    assert cnnlab(*args).returncode == 0


def test_a_search_trains_its_trials_at_once_on_the_pool(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import optuna
    from test_search import search_with_trial_1_pruned

    executor = LocalExecutor(Layout(2, 1))
    out, trials, epochs = search_with_trial_1_pruned(executor, data_dir, tmp_path, monkeypatch)
    assert {n: t["state"] for n, t in trials.items()} == {
        0: "complete", 1: "pruned", 2: "complete", 3: "complete"
    }  # fmt: skip
    assert epochs[trials[1]["run_id"]] == 1  # stopped at the epoch its pruner judged
    assert {t["run_id"] for t in trials.values()} <= set(executor.nodes)  # trained in workers
    search = optuna.load_study(study_name="search-demo", storage=f"sqlite:///{out}/search.sqlite3")
    first, second = search.trials[:2]
    assert second.datetime_start < first.datetime_complete  # two trials at once
    assert load_results(out).variants == ["default", "search #1"]


def test_a_worker_leaves_the_terminals_ctrl_c_to_its_driver():
    """Ctrl-C reaches the whole process group: a worker ignores it (the driver stops the
    pool and marks the runs interrupted); closing the pool ends it."""
    from cnnlab.study.run.local_pool import LocalPool

    pool = LocalPool(threads=1)
    (worker,) = pool.start(1)
    try:
        pool.wait(30.0)  # its "ready" comes once torch is imported
        assert worker.process.pid in workers_alive()  # by its name, forked or spawned
        os.kill(worker.process.pid, signal.SIGINT)
        time.sleep(0.5)
        assert worker.process.is_alive()
    finally:
        pool.close()
    assert not worker.process.is_alive()
