"""`cnnlab runs ls/rm`: a study folder's runs listed, and some forgotten so that the next
`cnnlab run` trains them again, with the same numbers."""

from __future__ import annotations

from study_helpers import GOOD_VARIANTS, TINY_DEFAULTS, flat, write_study

from cnnlab.cli.app import main
from cnnlab.study.store.database import load_results
from cnnlab.study.store.lock import study_lock


def test_runs_are_listed_forgotten_and_trained_again(tmp_path, data_dir, capsys):
    study = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--quiet"]
    assert main([*args, "--no-report"]) == 0
    before = {r.run_id: r.final_test_acc for r in load_results(out).runs}
    capsys.readouterr()
    assert main(["runs", "ls", str(out)]) == 0
    listed = flat(capsys.readouterr().out)
    assert "4 runs" in listed and all(run_id[:8] in listed.replace(" ", "") for run_id in before)

    assert main(["runs", "rm", str(out), "--variant", "a", "--seed", "1"]) == 0
    assert "1 run will train again" in flat(capsys.readouterr().out)
    forgotten = next(r for r in load_results(out).runs if (r.variant, r.seed) == ("a", 1))
    assert forgotten.status == "pending" and not forgotten.run_dir.exists()

    assert main([*args, "--no-report"]) == 0
    assert "1 run trained now" in flat(capsys.readouterr().out)
    assert {r.run_id: r.final_test_acc for r in load_results(out).runs} == before


def test_runs_rm_needs_a_choice_and_waits_for_no_one(tmp_path, data_dir, capsys):
    study = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "rm", str(out)]) == 2
    assert "say which runs" in capsys.readouterr().err
    assert main(["runs", "rm", str(out), "--variant", "nope"]) == 2
    assert "no run of" in capsys.readouterr().err
    with study_lock(out):  # a `cnnlab run` working there
        assert main(["runs", "rm", str(out), "--status", "done"]) == 2
    assert all(r.status == "done" for r in load_results(out).runs)


def test_a_dry_run_trains_nothing_and_says_what_is_left_and_how_long(tmp_path, data_dir, capsys):
    study = write_study(tmp_path, TINY_DEFAULTS + GOOD_VARIANTS)
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out), "--data-dir", str(data_dir)]
    assert main([*args, "--dry-run"]) == 0
    printed = flat(capsys.readouterr().out)
    assert "4 runs to train: about" in printed and "s / epoch" in printed
    assert not out.exists()  # nothing written
    assert main([*args, "--quiet", "--no-report", "--variants", "a"]) == 0
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    assert "2 runs to train" in flat(capsys.readouterr().out)
