"""The command line tells the truth: nothing announced before it is checked, plain
wording, advice that names flags the command has, resuming with no flags, progress in
a pipe, logging that can be seen."""

from __future__ import annotations

import io
import json
import subprocess
import time

import pytest
import torch
from fakedata import write_image_folder
from fresh import run_cnnlab

from cnnlab import heartbeat
from cnnlab.cli import main


def cnnlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command in a process of its own (tests/fresh.py), its output a file (not a
    terminal)."""
    return run_cnnlab(list(args), env={"OMP_NUM_THREADS": "1", **(env or {})})


def test_nothing_is_announced_before_the_settings_and_data_are_checked(tmp_path, capsys):
    empty = tmp_path / "nodata"
    empty.mkdir()
    assert main(["train", "--dataset", "svhn", "--data-dir", str(empty), "--epochs", "1"]) == 2
    done = capsys.readouterr()
    assert done.out == ""
    (line,) = done.err.strip().splitlines()
    assert "svhn: dataset not found" in line
    assert "`cnnlab data show svhn --download`" in " ".join(line.split())  # a command with it
    assert main(["train", "--model-arg", "foo=1", "--data-dir", str(empty)]) == 2
    bad_arg = capsys.readouterr()
    assert bad_arg.out == "" and "unknown argument 'foo'" in bad_arg.err
    assert not (tmp_path / "runs").exists()
    study = tmp_path / "study.toml"
    study.write_text(
        '[study]\nname = "s"\ndataset = "svhn"\nseeds = [0]\n[[variant]]\nname = "a"\n'
    )
    args = ["run", str(study), "--data-dir", str(empty), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    ran = capsys.readouterr()
    assert ran.out == "" and "svhn: dataset not found" in ran.err
    assert not (tmp_path / "out").exists()


def test_flag_errors_name_the_flag_in_plain_words(capsys):
    assert main(["train", "--lr", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--lr = -1.0: must be greater than 0" in err and "Input should" not in err
    assert main(["train", "--val-fraction", "1.5"]) == 2
    assert "--val-fraction = 1.5: must be less than 1" in capsys.readouterr().err


def test_resume_with_only_the_run_folder_continues_with_its_settings(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--model", "mlp", "--epochs", "2", "--seed", "3"]
    killed = cnnlab("train", *common, "--out", str(out), env={"CNNLAB_KILL_AT": "checkpoint@1"})
    assert killed.returncode != 0 and (out / "checkpoint.pt").is_file()
    assert not (out / "summary.json").exists()  # killed after epoch 1 of 2

    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["epochs"], summary["seed"], summary["model"]) == (2, 3, "mlp")

    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    assert "different settings (optimizer)" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "nope"), "--resume"]) == 2
    assert "holds no run to continue" in capsys.readouterr().err


def test_config_takes_a_run_folder_or_its_config_json(data_dir, tmp_path, capsys):
    first = tmp_path / "first"
    base = ["train", "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "1", "--quiet"]
    assert main([*base, "--lr", "0.003", "--out", str(first)]) == 0
    for source in (first, first / "config.json"):
        again = tmp_path / f"again-{source.name}"
        assert main(["train", "--config", str(source), "--seed", "5", "--out", str(again)]) == 0
        config = json.loads((again / "config.json").read_text())
        assert config["optimizer"]["lr"] == 0.003 and config["seed"] == 5
    (tmp_path / "broken.json").write_text("[1, 2]")
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "broken.json")]) == 2
    assert "not a cnnlab config.json" in capsys.readouterr().err


def test_heartbeat_speaks_only_when_the_output_has_been_quiet():
    out = io.StringIO()
    beat = heartbeat.start(out, every=0.2)
    try:
        wrapped = beat.wrap(out)
        heartbeat.doing("decoding cifar10")
        for _ in range(6):  # other output every 0.05 s: no heartbeat
            wrapped.write("epoch line\n")
            time.sleep(0.05)
        assert "still working" not in out.getvalue()
        time.sleep(0.6)
        assert "still working: decoding cifar10 (" in out.getvalue()
    finally:
        heartbeat.stop()
    heartbeat.doing("ignored with no heartbeat running")


def test_long_loops_leave_nothing_in_a_pipe_but_tell_the_heartbeat(capfd):
    out = io.StringIO()
    heartbeat.start(out, every=0.2)
    try:
        items = heartbeat.counted(range(5000), 5000, "printed digits: rendering 5000", 10)
        assert sum(items) == sum(range(5000))
        assert heartbeat._current is not None
        assert heartbeat._current.text == "printed digits: rendering 5000"
    finally:
        heartbeat.stop()
    assert capfd.readouterr().err == ""  # a bar in a pipe left an empty line behind


@pytest.mark.slow
def test_a_long_epoch_in_a_pipe_prints_heartbeat_lines(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNLAB_HEARTBEAT_SECONDS", "0.2")  # captured stdout: not a terminal
    # a slow step makes the epoch outlast the heartbeat on any CPU (on a fast one the tiny
    # data's epoch took 0.1 s and no beat came)
    adam_step = torch.optim.Adam.step

    def slow_step(self, *a, **k):
        time.sleep(0.03)
        return adam_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", slow_step)
    args = ["train", "--data-dir", str(data_dir), "--model", "lenet5", "--epochs", "2"]
    assert main([*args, "--batch-size", "16", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    beats = [line for line in out.splitlines() if line.startswith("still working: ")]
    assert beats, out
    assert any("epoch" in b and "step" in b for b in beats), beats
    phases = ("step", "evaluating", "loading", "starting")
    assert all(any(p in b for p in phases) for b in beats), beats
    monkeypatch.setenv("CNNLAB_HEARTBEAT_SECONDS", "0.05")
    assert main([*args, "--quiet", "--out", str(tmp_path / "quiet")]) == 0
    assert "still working" not in capsys.readouterr().out


def test_verbose_shows_what_cnnlab_logs_and_log_file_keeps_it(tmp_path):
    folder = tmp_path / "pets"
    write_image_folder(folder, n_per_class=4)
    env = {"CNNLAB_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "cnnlab.log"
    shown = cnnlab(
        "-v", "data", "show", f"folder:{folder}", "--out", str(tmp_path / "grid.png"),
        "--log-file", str(log), env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "cnnlab: INFO: " in shown.stderr and "decoded 16 images" in shown.stderr
    assert "decoded 16 images" in log.read_text()
    silent = cnnlab("data", "show", f"folder:{folder}", "--out", str(tmp_path / "g2.png"), env=env)
    assert "INFO" not in silent.stderr
    bad = cnnlab("models", "list", "--log-file", str(tmp_path / "no" / "such" / "x.log"))
    assert bad.returncode == 2 and "--log-file" in bad.stderr and "Traceback" not in bad.stderr


def test_help_explains_exit_status_heartbeat_and_logging(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 done, 1 tried and failed" in text
    assert "still working" in text and "--log-file" in text
