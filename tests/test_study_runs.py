"""Studies run end to end: `cnnlab run`, failures, interrupts, moved folders, the lock,
the preflight."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from study_helpers import (  # noqa: F401 (autouse fixtures)
    GOOD_VARIANTS,
    TINY_DEFAULTS,
    _no_curve_plots,
    _one_thread,
    cnnlab,
    db_rows,
    flat,
    write_study,
)

from cnnlab.cli import main
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.study.plan.study_file import load_study
from cnnlab.study.run.runner import run_study, study_lock
from cnnlab.study.run.study_progress import QuietStudyProgress
from cnnlab.study.store.database import load_results
from cnnlab.training.reporting import QuietReporter

# ---------------------------------------------------------------------------------------------
# Running studies


def mlp_study(
    folder: Path, data_dir: Path, extra: str = "", seeds: str = "[0]", first: str = ""
) -> Path:
    return write_study(
        folder,
        TINY_DEFAULTS.replace("[defaults]", f'[defaults]\ndata_dir = "{data_dir}"')
        + first
        + '[[variant]]\nname = "mlp"\nmodel = "mlp"\n'
        + extra,
        header=f'[study]\nname = "tiny"\ndataset = "mnist"\nseeds = {seeds}\n',
    )


def test_variants_option_keeps_the_named_variants_and_their_run_ids(tmp_path):
    body = TINY_DEFAULTS + GOOD_VARIANTS + '\n[grid]\n"optimizer.lr" = [1e-1, 1e-3]\n'
    path = write_study(tmp_path, body)
    full = load_study(path)
    only = load_study(path, variants=["+dropout"])  # a [[variant]] name: all its grid points
    assert only.variant_names == ["+dropout lr=0.1", "+dropout lr=0.001"]
    assert only.baseline == "+dropout lr=0.1"  # the study's baseline ("a ...") was left out
    assert only.options["variants"] == ["+dropout"]
    ids = {(r.variant, r.seed): r.run_id for r in full.plan(tmp_path / "out")}
    for run in only.plan(tmp_path / "out"):
        assert ids[(run.variant, run.seed)] == run.run_id  # the same runs as in the full study
    one = load_study(path, variants=["a lr=0.001", "a lr=0.1"])
    assert one.variant_names == ["a lr=0.1", "a lr=0.001"]  # file order
    assert one.baseline == "a lr=0.1" == full.baseline
    with pytest.raises(ConfigError, match=r"no variant 'b'; variants: a, \+dropout$"):
        load_study(path, variants=["a", "b"])
    with pytest.raises(ConfigError, match="--variants is empty"):
        load_study(path, variants=[])


@pytest.mark.slow
def test_tiny_study_end_to_end_through_the_cli(data_dir, tmp_path, capsys):
    study = write_study(
        tmp_path,
        TINY_DEFAULTS
        + """
        [[variant]]
        name = "LeNet-5"
        model = "lenet5"

        [[variant]]
        name = "MLP"
        model = "mlp"
        """,
    )
    out = tmp_path / "out"
    result = cnnlab(
        "run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-report"
    )
    assert result.returncode == 0, result.stderr
    assert "run 4/4" in result.stdout and "LeNet-5 seed 1: test acc" in result.stdout
    assert "baseline" in result.stdout and "2/2" in result.stdout  # the verdicts table
    results = load_results(out)
    assert [(r.variant, r.seed, r.status, len(r.history)) for r in results.runs] == [
        ("LeNet-5", 0, "done", 1), ("LeNet-5", 1, "done", 1), ("MLP", 0, "done", 1), ("MLP", 1, "done", 1),
    ]  # fmt: skip
    for r in results.runs:
        assert r.final_test_acc == r.history[-1].test_acc > 0.3
        assert (r.run_dir / "summary.json").is_file() and (r.run_dir / "checkpoint.pt").is_file()
        assert r.run_dir.name.endswith(r.run_id[:8])
    assert db_rows(out, "SELECT COUNT(*) FROM artifacts WHERE kind = 'curves'") == [(4,)]

    # Rerunning skips every done run: no training, nothing rewritten.
    mtimes = [(r.run_dir / "summary.json").stat().st_mtime_ns for r in results.runs]
    capsys.readouterr()
    assert (
        main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-report"])
        == 0
    )
    assert "0 runs trained now; skipped 4 done before" in flat(capsys.readouterr().out)
    again = load_results(out)
    assert [(r.attempts, r.started_at) for r in again.runs] == [
        (1, r.started_at) for r in results.runs
    ]
    assert [(r.run_dir / "summary.json").stat().st_mtime_ns for r in again.runs] == mtimes

    # A run folder deleted by hand: that run trains again, the others stay skipped.
    shutil.rmtree(again.runs[1].run_dir)
    capsys.readouterr()
    assert (
        main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-report"])
        == 0
    )
    assert "1 run trained now; skipped 3 done before" in flat(capsys.readouterr().out)
    assert (again.runs[1].run_dir / "summary.json").is_file()

    # The report, end to end from the real store: written by `run`, read back by `report`.
    assert main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    html = (out / "report.html").read_text()
    assert "LeNet-5" in html and "MLP" in html and "data:image/png;base64," in html
    capsys.readouterr()
    assert main(["report", str(out), "--format", "json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert json.dumps(numbers).count("MLP") >= 1
    assert main(["report", str(out), "--format", "md"]) == 0
    assert "LeNet-5" in (out / "report.md").read_text()


def test_failed_run_is_recorded_the_study_goes_on_and_retry_reruns_it(data_dir, tmp_path, capsys):
    study = mlp_study(
        tmp_path,
        data_dir,
        first='[[variant]]\nname = "diverges"\nmodel = "mlp"\n'
        'optimizer = { name = "sgd", lr = 1e6, momentum = 0.9 }\n',
    )
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--no-report", "--quiet"]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert "failed: diverges seed 0: training diverged" in flat(printed.out)
    assert "1 run trained now, 1 failed" in flat(printed.out)  # only finished runs count
    assert "1 of 2 runs failed" in flat(printed.err)  # and exit status 1 for scripts
    by_variant = {r.variant: r for r in load_results(out).runs}
    assert by_variant["mlp"].status == "done"  # the run after the failed one
    failed = by_variant["diverges"]
    assert failed.status == "failed" and "diverged" in failed.error and failed.summary is None

    assert main(args) == 1
    assert "skipped 1 done before, 1 failed before (--retry-failed reruns them)" in flat(
        capsys.readouterr().out
    )
    assert {r.variant: r.attempts for r in load_results(out).runs} == {"mlp": 1, "diverges": 1}

    assert main([*args, "--retry-failed"]) == 1
    again = {r.variant: r for r in load_results(out).runs}
    assert {v: r.attempts for v, r in again.items()} == {"mlp": 1, "diverges": 2}
    assert again["diverges"].status == "failed" and again["diverges"].started_at > failed.started_at


def test_crash_is_recorded_and_interrupt_stops_the_study_resumably(data_dir, tmp_path, monkeypatch):
    from cnnlab.training import loop

    study = load_study(mlp_study(tmp_path, data_dir, seeds="[0, 1, 2]"))
    out = tmp_path / "out"
    real_train = loop.train
    calls = []

    def flaky_train(cfg, out_dir, **kwargs):
        calls.append(cfg.seed)
        if cfg.seed == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
        if cfg.seed == 1 and len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(cfg, out_dir, **kwargs)

    monkeypatch.setattr(loop, "train", flaky_train)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out)
    runs = load_results(out).runs
    assert [r.status for r in runs] == ["failed", "interrupted", "pending"]
    assert runs[0].error == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "Traceback" in (runs[0].run_dir / "error.txt").read_text()

    outcome = run_study(study, out)  # resumes the interrupted run, skips the failed one
    assert outcome.skipped_failed == [runs[0].run_id] and calls == [0, 1, 1, 2]
    assert [(r.status, r.attempts) for r in outcome.results.runs] == [
        ("failed", 1),
        ("done", 2),
        ("done", 1),
    ]


def test_a_moved_study_folder_resumes_its_runs(data_dir, tmp_path):
    """A run interrupted after epoch 1, then the study (file, model file, results) moves."""
    a = tmp_path / "a"
    (a / "models").mkdir(parents=True)
    (a / "models" / "tiny.toml").write_text('layer = [{ type = "flatten" }, { type = "dense" }]\n')
    body = TINY_DEFAULTS.replace("epochs = 1", "epochs = 2")
    body += '[[variant]]\nname = "linear"\nmodel = "models/tiny.toml"\n'
    study_file = write_study(
        a, body, header='[study]\nname = "m"\ndataset = "mnist"\nseeds = [0]\n'
    )

    class Stop(QuietReporter):
        def end_epoch(self, row):
            raise KeyboardInterrupt  # after the checkpoint and the epoch row are written

    class StopAfterFirstEpoch(QuietStudyProgress):
        def run_started(self, run, epochs_done):
            return Stop()

    with pytest.raises(KeyboardInterrupt):
        run_study(
            load_study(study_file, data_dir=data_dir), a / "out", progress=StopAfterFirstEpoch()
        )
    assert [len(r.history) for r in load_results(a / "out").runs] == [1]

    shutil.move(a, tmp_path / "b")
    moved = load_study(tmp_path / "b" / "study.toml", data_dir=data_dir)
    outcome = run_study(moved, tmp_path / "b" / "out")
    (run,) = outcome.results.runs
    assert (run.status, run.attempts, len(run.history)) == ("done", 2, 2), run.error
    assert run.config["model"] == str(tmp_path / "b" / "models" / "tiny.toml")

    reference = run_study(moved, tmp_path / "ref").results.runs[0]
    assert reference.run_id == run.run_id
    assert [h.test_loss for h in reference.history] == [h.test_loss for h in run.history]


def test_one_runner_per_study_folder(data_dir, tmp_path):
    study = load_study(mlp_study(tmp_path, data_dir))
    with study_lock(tmp_path / "out"), pytest.raises(CnnlabError, match="another `cnnlab run`"):
        run_study(study, tmp_path / "out")


def test_a_run_refused_by_the_lock_prints_nothing_but_the_error(data_dir, tmp_path, capsys):
    path = mlp_study(tmp_path, data_dir)
    with study_lock(tmp_path / "out"):
        assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "another `cnnlab run` is working" in flat(captured.err)


def test_preflight_rejects_a_model_that_cannot_take_the_images(data_dir, tmp_path):
    (tmp_path / "big.toml").write_text(
        'layer = [{ type = "conv", filters = 2, kernel = 40 }, { type = "flatten" }, { type = "dense" }]\n'
    )
    study = load_study(
        mlp_study(
            tmp_path,
            data_dir,
            '[[variant]]\nname = "too big"\nmodel = "big.toml"\n',
        )
    )
    with pytest.raises(
        ConfigError, match=r"variant 'too big': .*cannot take an input of shape 1x28x28"
    ):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_preflight_rejects_a_batch_larger_than_the_training_split(data_dir, tmp_path):
    # 600 training images, 20% held out for validation: 480 are left to train on.
    variant = '[[variant]]\nname = "huge"\nmodel = "mlp"\nbatch_size = 500\nval_fraction = 0.2\n'
    study = load_study(mlp_study(tmp_path, data_dir, variant))
    with pytest.raises(ConfigError, match=r"variant 'huge': batch_size 500 is larger than the 480"):
        run_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = write_study(tmp_path, GOOD_VARIANTS + 'augmnt = "flip"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error:") and "unknown setting 'augmnt'" in flat(err)
    assert main(["run", str(bad), "--seeds", "0,x"]) == 2
    assert "--seeds '0,x' is not a list of integers" in flat(capsys.readouterr().err)
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in flat(capsys.readouterr().err)


def test_run_help_teaches_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for flag in ("--epochs-scale", "--seeds", "--retry-failed", "--no-report", "examples:"):
        assert flag in text


def test_a_pool_of_workers_gets_the_most_training_first(data_dir, tmp_path):
    # Study order puts the small MLP first; a Ray pool should start the LeNet-5 run with
    # three epochs first, then the one-epoch LeNet-5, and the MLP last.
    pytest.importorskip("ray")
    from cnnlab.study.run.ray_executor import RayExecutor
    from cnnlab.study.store.database import Store

    variants = (
        '[[variant]]\nname = "lenet"\nmodel = "lenet5"\n'
        '[[variant]]\nname = "lenet long"\nmodel = "lenet5"\nepochs = 3\n'
    )
    runs = load_study(mlp_study(tmp_path, data_dir, variants)).plan(tmp_path / "out")
    executor = RayExecutor()
    assert [executor.local.work(run) for run in runs] == [0.0, 0.0, 0.0]  # not checked yet
    executor.check(runs)
    mlp, lenet, lenet_long = (executor.local.work(run) for run in runs)
    assert 0 < mlp < lenet and lenet_long == 3 * lenet
    assert executor.local.work(runs[2], epochs_done=2) == lenet  # a resumed run: what is left
    with Store(tmp_path / "out") as store:
        order = executor.longest_first(runs, store)
    assert [run.variant for run in order] == ["lenet long", "lenet", "mlp"]
