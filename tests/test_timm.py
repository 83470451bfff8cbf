"""A timm model through the API and the CLI: trained, predicted and exported (timm is
installed by the test set-up with --no-deps beside the pinned torch; skipped without it)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import learnable_digits
from PIL import Image

import cnnlab
from cnnlab.cli.app import main

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.slow
SETTINGS = dict(dataset="mnist", epochs=1, batch_size=100, precision="fp32", device="cpu")


def test_a_timm_model_by_its_factory_trains_predicts_and_exports_in_other_processes(
    data_dir, tmp_path, monkeypatch
):
    image = tmp_path / "digit.png"
    Image.fromarray(learnable_digits(1, 0)[0][0]).save(image)
    record = cnnlab.train(
        model=timm.create_model, model_args={"model_name": "resnet10t", "in_chans": 1},
        data_dir=str(data_dir), out=tmp_path / "api", **SETTINGS,
    )  # fmt: skip
    assert record.summary.params > 1_000_000
    for step in (["predict", str(tmp_path / "api" / "checkpoint.pt"), str(image)],
                 ["export", str(tmp_path / "api" / "checkpoint.pt"), str(tmp_path / "m.pt"),
                  "--format", "torchscript"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "cnnlab", *step], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.pt").is_file()


def test_a_timm_model_from_the_command_line_and_as_an_object(data_dir, tmp_path, capsys):
    args = ["train", "--model", "timm:create_model", "--model-arg", "model_name=resnet10t",
            "--model-arg", "in_chans=1", "--dataset", "mnist", "--data-dir", str(data_dir),
            "--epochs", "1", "--precision", "fp32", "--out", str(tmp_path / "cli"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    image = tmp_path / "digit.png"
    Image.fromarray(learnable_digits(1, 0)[0][0]).save(image)
    assert main(["predict", str(tmp_path / "cli" / "checkpoint.pt"), str(image)]) == 0
    with pytest.warns(UserWarning, match="cannot rebuild it"):
        record = cnnlab.train(model=timm.create_model("resnet10t", num_classes=10, in_chans=1),
                              data_dir=str(data_dir), out=tmp_path / "obj", **SETTINGS)  # fmt: skip
    assert record.summary.params > 1_000_000  # the timm network trained, not a stand-in
