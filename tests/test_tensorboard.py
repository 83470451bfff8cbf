"""TensorBoard event files, read back with TensorBoard's own reader."""

from __future__ import annotations

import sys

import pytest

from cnnlab.cli.app import main
from cnnlab.config.schema import make_config
from cnnlab.errors import ConfigError
from cnnlab.training.loop import train
from cnnlab.training.reporting import QuietReporter

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def events(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def steps(acc, tag):
    return [e.step for e in acc.Scalars(tag)]


def config(data_dir, **extra):
    values = {"model": "mlp", "epochs": 3, "batch_size": 20, "data_dir": str(data_dir),
              "device": "cpu", "tensorboard": True}  # fmt: skip
    return make_config({**values, **extra})


def test_a_run_logs_steps_epochs_and_hparams(data_dir, tmp_path):
    record = train(config(data_dir), tmp_path / "run")
    acc = events(tmp_path / "run")
    tags = set(acc.Tags()["scalars"])
    assert {"train_running/loss", "train_running/acc", "train_running/images_per_s"} <= tags
    assert {"epoch/test_acc", "epoch/train_loss", "epoch/lr", "epoch/images_per_s"} <= tags
    per_epoch = 600 // 20
    assert steps(acc, "epoch/test_acc") == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    logged = [e.value for e in acc.Scalars("epoch/test_acc")]
    assert logged == pytest.approx([r.test_acc for r in record.history])
    assert [e.value for e in acc.Scalars("hparam/test_acc")] == pytest.approx(
        [record.summary.final.test_acc]
    )
    plugins = acc.PluginTagToContent("hparams")
    assert plugins, "no hparams summary"
    from tensorboard.plugins.hparams import plugin_data_pb2

    for content in plugins.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparams = data.session_start_info.hparams
            assert hparams["optimizer.lr"].number_value == pytest.approx(1e-3)
            assert hparams["model"].string_value == "mlp"
            break
    else:
        raise AssertionError("no session start info with the run's settings")


class StopInEpoch(QuietReporter):
    """Interrupts epoch ``epoch`` after its first logged steps (past the last checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.stop_in, self.epoch = epoch, 0

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch = epoch

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        if self.epoch == self.stop_in:
            raise KeyboardInterrupt


def test_a_resumed_run_has_each_step_once(data_dir, tmp_path):
    cfg = config(data_dir)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", reporter=StopInEpoch(3))
    cut = steps(events(tmp_path / "run"), "train_running/loss")
    assert cut[-1] > 2 * 600 // 20  # logged past the checkpoint of epoch 2
    train(cfg, tmp_path / "run", resume=True)
    acc = events(tmp_path / "run")
    for tag in ("epoch/test_acc", "train_running/loss"):
        logged = steps(acc, tag)
        assert logged == sorted(set(logged)), tag
    assert len(steps(acc, "epoch/test_acc")) == 3


@pytest.mark.slow
def test_turning_tensorboard_on_keeps_the_run_and_its_id(data_dir, tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(
        f'[study]\nname = "tb"\ndataset = "mnist"\nseeds = [0]\n[defaults]\nmodel = "mlp"\n'
        f'epochs = 1\ndata_dir = "{data_dir}"\n[[variant]]\nname = "a"\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-report"]) == 0
    before = sorted(p.name for p in (out / "runs").iterdir())
    assert main(["run", str(study), "--out", str(out), "--quiet", "--tensorboard"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before  # done: not rerun
    fresh = tmp_path / "fresh"
    assert main(["run", str(study), "--out", str(fresh), "--quiet", "--tensorboard"]) == 0
    assert sorted(p.name for p in (fresh / "runs").iterdir()) == before  # same run ids
    assert steps(events(fresh / "runs" / before[0]), "epoch/test_acc")


def test_without_the_package_it_is_one_line_before_training(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"needs the tensorboard package: pip install"):
        train(config(data_dir), tmp_path / "run")
    assert not (tmp_path / "run").exists()
