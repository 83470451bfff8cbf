"""The machine refusing a write: a full disk (a real tmpfs, mounted when the tests run as
root) and a read-only folder end in one line, exit status 3, nothing half-written, and
the same command continues once space is freed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from study_helpers import write_study

from cnnlab.cli.app import main
from cnnlab.study.store.database import load_results

STUDY = """
[defaults]
epochs = 1
batch_size = 50
precision = "fp32"
device = "cpu"
optimizer = { name = "adam", lr = 1e-3 }

[[variant]]
name = "lenet"
model = "lenet5"

[[variant]]
name = "mlp"
model = "mlp"
"""


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size at tmp_path / "disk", and a way to grow it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()

    def sized(size: str) -> Path:
        options = f"size={size}" if not os.path.ismount(mount) else f"remount,size={size}"
        # A read-only remount is refused ("busy") while a file is being written there:
        # the training process writes in bursts, so one of the next tries finds a gap.
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode == 0 or "busy" not in done.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        return mount

    yield sized
    if os.path.ismount(mount):
        subprocess.run(["umount", str(mount)], check=False)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_train_onto_a_full_disk_says_so_in_one_line(small_disk, data_dir, capsys):
    disk = small_disk("600k")
    args = ["train", "--model", "lenet5", "--dataset", "mnist", "--data-dir", str(data_dir)]
    args += ["--epochs", "1", "--precision", "fp32", "--out", str(disk / "run")]
    assert main(args) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert "no space left on device writing" in line and "checkpoint.pt" in line
    assert not any(p.name.endswith(".tmp") for p in (disk / "run").iterdir())


@pytest.mark.slow
def test_a_study_on_a_full_disk_stops_in_one_line_and_resumes_when_space_is_freed(
    small_disk, tmp_path, data_dir, capsys
):
    study = write_study(tmp_path, STUDY)
    disk = small_disk("1500k")
    args = ["run", str(study), "--data-dir", str(data_dir), "--quiet", "--workers", "1"]
    assert main([*args, "--out", str(disk / "study")]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("cnnlab: error: no space left on device writing")
    assert not (disk / "study" / "run.lock").exists()  # the study's lock is released

    small_disk("100m")
    assert main([*args, "--out", str(disk / "study")]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    resumed, whole = load_results(disk / "study"), load_results(tmp_path / "whole")
    finals = {r.run_id: r.final_test_acc for r in whole.runs}
    assert {r.run_id: r.final_test_acc for r in resumed.runs} == finals
    assert all(r.status == "done" for r in resumed.runs)


def test_a_read_only_file_system_is_one_line(small_disk, data_dir, capsys):
    disk = small_disk("10m")
    small_disk("10m,ro")  # remounted read-only: even root cannot write there
    args = ["train", "--model", "mlp", "--dataset", "mnist", "--data-dir", str(data_dir)]
    assert main([*args, "--epochs", "1", "--out", str(disk / "run")]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert "read-only file system writing" in line and str(disk / "run") in line


@pytest.mark.slow
def test_a_run_folder_made_read_only_mid_training_with_tensorboard_is_one_line(
    small_disk, data_dir
):
    """TensorBoard's writer thread meets the refusal too: only the command's line shows."""
    import sys

    pytest.importorskip("tensorboard")
    disk = small_disk("50m")
    args = [sys.executable, "-m", "cnnlab", "train", "--model", "mlp", "--dataset", "mnist",
            "--data-dir", str(data_dir), "--epochs", "100000", "--precision", "fp32",
            "--tensorboard", "--out", str(disk / "run")]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (disk / "run" / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    small_disk("50m,ro")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    line = _one_error_line(err)
    assert "read-only file system writing" in line and str(disk / "run") in line
