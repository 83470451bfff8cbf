import csv
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.config.files import load_config_file
from cnnlab.config.schema import make_config
from cnnlab.data.arrays import Split
from cnnlab.data.datasets import load_dataset
from cnnlab.errors import ConfigError
from cnnlab.evaluation.metrics import accuracy_by_domain, domain_counts
from cnnlab.evaluation.precision import resolve_precision
from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.loop import train
from cnnlab.training.recipe import lr_factor
from cnnlab.training.reporting import QuietReporter


def small_config(data_dir: Path, **overrides):
    values = {
        "dataset": "mnist",
        "model": "lenet5",
        "epochs": 2,
        "batch_size": 50,
        "eval_batch_size": 100,
        "precision": "fp32",
        "device": "cpu",
        "data_dir": str(data_dir),
        "seed": 0,
    }
    values.update(overrides)
    return make_config(values)


def read_metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_training_learns_and_writes_the_run_folder(data_dir, tmp_path):
    cfg = small_config(data_dir, epochs=2, optimizer={"name": "adam", "lr": 3e-3})
    summary = train(cfg, tmp_path / "run").summary
    rows = read_metrics(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # Chance is 10% and ln(10) = 2.30: learning must beat both clearly.
    assert float(rows[-1]["test_loss"]) < 1.0 < math.log(10)
    assert summary.final.test_acc > 0.8
    assert summary.params == 61_706
    for name in ("config.json", "summary.json", "metrics.csv", "checkpoint.pt"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert not (tmp_path / "run" / "curves.png").exists()  # the trainer draws nothing
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "lenet5"


def test_same_seed_gives_identical_metrics_and_other_seed_differs(data_dir, tmp_path):
    def metrics(seed: int, name: str):
        train(small_config(data_dir, epochs=1, seed=seed, augment="rotate=10"), tmp_path / name)
        return [(r["train_loss"], r["test_loss"]) for r in read_metrics(tmp_path / name)]

    first = metrics(3, "a")
    assert first == metrics(3, "b")
    assert first != metrics(4, "c")


class StopBeforeEpoch(QuietReporter):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"ema_decay": 0.9, "tta": "flip"},
        {"optimizer": {"name": "muon", "lr": 0.05, "nesterov": True, "weight_decay": 5e-4}},
    ],
    ids=["plain", "ema", "muon"],
)
def test_resumed_run_ends_like_an_uninterrupted_one(data_dir, tmp_path, extra):
    cfg = small_config(
        data_dir,
        epochs=3,
        augment="translate=0.1",
        model_args={"batch_norm": True},
        schedule={"name": "cosine"},
        **extra,
    )
    train(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", reporter=StopBeforeEpoch(3))
    assert len(read_metrics(tmp_path / "cut")) == 2
    train(cfg, tmp_path / "cut", resume=True)

    def strip_time(rows):
        return [
            {k: v for k, v in r.items() if "second" not in k and "per_s" not in k} for r in rows
        ]

    assert strip_time(read_metrics(tmp_path / "cut")) == strip_time(read_metrics(tmp_path / "full"))
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt").state_dict
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt").state_dict
    for key in full:
        torch.testing.assert_close(full[key], cut[key], rtol=0, atol=0)
    averaged = load_checkpoint(tmp_path / "cut" / "checkpoint.pt").averaged_state_dict
    assert (averaged is not None) == ("ema_decay" in extra)


def test_existing_run_needs_resume_and_same_settings(data_dir, tmp_path):
    cfg = small_config(data_dir, epochs=1)
    train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"different settings.*seed"):
        train(small_config(data_dir, epochs=1, seed=9), tmp_path / "run", resume=True)


def test_checkpoint_round_trip_predicts_the_same(data_dir, tmp_path):
    cfg = small_config(data_dir, epochs=1)
    train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt.classes == [str(d) for d in range(10)]
    assert ckpt.input_shape == (1, 32, 32)
    assert ckpt.epoch == 1 and ckpt.step == 12
    model = ckpt.build_model()
    x = torch.randn(4, 1, 32, 32)
    again = load_checkpoint(tmp_path / "run" / "checkpoint.pt").build_model()
    torch.testing.assert_close(model(x), again(x))
    # The file is loadable with the safe loader alone.
    payload = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert payload["format"] == "cnnlab-checkpoint/1"


def test_validation_split_and_early_stopping(data_dir, tmp_path):
    cfg = small_config(
        data_dir, epochs=30, val_fraction=0.2, early_stopping=1, optimizer={"lr": 0.05}
    )
    summary = train(cfg, tmp_path / "run").summary
    assert summary.final.val_acc is not None
    assert summary.stopped_early and summary.epochs < 30


def test_early_stopping_without_validation_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="val_fraction"):
        train(small_config(data_dir, early_stopping=2), tmp_path / "run")


def test_diverging_loss_is_reported(data_dir, tmp_path):
    from cnnlab.training.loop import TrainingDiverged

    cfg = small_config(data_dir, epochs=1, optimizer={"name": "sgd", "lr": 1e6, "momentum": 0.9})
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(cfg, tmp_path / "run")


def test_a_run_that_fails_leaves_a_folder_that_says_why(data_dir, tmp_path):
    from cnnlab.errors import RunFailed
    from cnnlab.training.run import train_run

    cfg = small_config(data_dir, epochs=1, optimizer={"name": "sgd", "lr": 1e6, "momentum": 0.9})
    with pytest.raises(RunFailed):
        train_run(cfg, tmp_path / "run")
    assert "diverged" in (tmp_path / "run" / "error.txt").read_text()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epoch": 3}, "unknown setting 'epoch' (did you mean 'epochs'?); allowed: dataset, model"),
        (
            {"optimizer": {"name": "adamm"}},
            "optimizer.name = 'adamm' is not allowed (did you mean 'adam'?); use one of",
        ),
        (
            {"optimizer": {"lrr": 1}},
            "unknown setting 'optimizer.lrr' (did you mean 'lr'?); allowed: name, lr",
        ),
        ({"early_stopping": 3}, "early_stopping needs a validation split: set val_fraction > 0"),
        ({"optimizer": {"name": "adam", "nesterov": True}}, "nesterov is an SGD option"),
        ({"optimizer": {"name": "sgd", "muon_lr": 0.1}}, "muon_lr is a muon option"),
        ({"dataset": "cifar01"}, "unknown dataset 'cifar01' (did you mean 'cifar10'?)"),
        (
            {"optimizer": {"lr": float("inf")}},
            "optimizer.lr = inf: must be a finite number (not inf or nan)",
        ),
        ({"seed": 2**63}, "seed = 9223372036854775808: must be less than 4294967296"),
        ({"epochs": 0}, "epochs = 0"),
        ({"augment": "rotat=3"}, "unknown op 'rotat'"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_config(values)


def test_every_bad_setting_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        make_config({"epochs": 0, "batch_sise": 8, "optimizer": {"name": "sgdd"}}, "run.toml")
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("run.toml: ") for line in lines)
    assert "epochs = 0" in lines[0] and "did you mean 'batch_size'" in str(info.value)


def test_config_file_with_flag_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "mlp"\nepochs = 4\n[optimizer]\nname = "sgd"\nlr = 0.1\n')
    cfg = load_config_file(path, {"epochs": 7, "optimizer": {"lr": 0.01}})
    assert (cfg.model, cfg.epochs, cfg.optimizer.name, cfg.optimizer.lr) == ("mlp", 7, "sgd", 0.01)
    path.write_text("epochs = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="a folder without config"):
        load_config_file(tmp_path)


def test_schedules_start_and_end_where_expected():
    from cnnlab.config.schema import ScheduleConfig

    total, per_epoch = 100, 10
    cosine = ScheduleConfig(name="cosine")
    assert lr_factor(cosine, 0, per_epoch, total) == pytest.approx(1.0)
    assert lr_factor(cosine, 99, per_epoch, total) < 0.01
    warm = ScheduleConfig(name="linear", warmup_epochs=1)
    assert [round(lr_factor(warm, s, per_epoch, total), 2) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_factor(warm, 99, per_epoch, total) < 0.02
    step = ScheduleConfig(name="step", step_every=3, gamma=0.5)
    assert [lr_factor(step, e * per_epoch, per_epoch, total) for e in (0, 2, 3, 6)] == [
        1,
        1,
        0.5,
        0.25,
    ]
    one = ScheduleConfig(name="onecycle")
    peak = max(lr_factor(one, s, per_epoch, total) for s in range(total))
    assert lr_factor(one, 0, per_epoch, total) < 0.1 and peak == pytest.approx(1.0, abs=0.01)


def test_precision_policy():
    assert resolve_precision("fp32", "cpu").autocast_dtype is None
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.autocast_dtype == torch.bfloat16 and bf16.channels_last
    auto = resolve_precision("auto", "cpu")
    assert auto.device.type == "cpu"


@pytest.mark.parametrize(
    ("native", "amx", "label"),
    [
        (False, False, "cpu fp32 channels_last"),  # AVX2: bf16 emulated
        (True, False, "cpu fp32 channels_last"),  # AVX-512 BF16: native, measured slower
        (True, True, "cpu bf16 channels_last"),  # AMX
    ],
)
def test_auto_on_a_cpu_picks_bf16_only_with_amx(native, amx, label, monkeypatch):
    from cnnlab.evaluation import precision

    monkeypatch.setattr(precision.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    monkeypatch.setattr(precision.torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", "cpu").label == label


def test_bf16_training_runs_on_cpu(data_dir, tmp_path):
    summary = train(small_config(data_dir, epochs=1, precision="bf16"), tmp_path / "run").summary
    assert "bf16 channels_last" in summary.precision
    assert math.isfinite(summary.final.test_loss)


def test_dataset_loader_pads_mnist_for_lenet(data_dir):
    data = load_dataset("mnist", data_dir)
    assert data.shape == (1, 28, 28)


def test_composite_dataset_reports_accuracy_per_domain(data_dir, tmp_path):
    data = load_dataset("mnist", data_dir)
    half = len(data.test) // 2
    domains = np.repeat(np.array([0, 1], dtype=np.int64), [half, len(data.test) - half])
    composite = dataclasses.replace(
        data,
        test=Split(data.test.images, data.test.labels, domains),
        domain_names=["first", "second", "absent"],
    )
    cfg = small_config(data_dir, epochs=1)
    summary = train(cfg, tmp_path / "run", data=composite).summary
    by_domain = summary.final.test_acc_by_domain
    # A domain with no test images is left out rather than reported as NaN.
    assert list(by_domain) == ["first", "second"]
    overall = summary.final.test_acc
    weighted = (by_domain["first"] * half + by_domain["second"] * (len(data.test) - half)) / len(
        data.test
    )
    assert weighted == pytest.approx(overall, abs=1e-6)


def test_accuracy_by_domain_counts_each_domain():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])
    domains = np.array([0, 0, 1, 1], dtype=np.int64)
    assert accuracy_by_domain(logits, labels, domains, ["a", "b"]) == {"a": 1.0, "b": 0.0}
    assert domain_counts(domains, ["a", "b", "c"]) == {"a": 2, "b": 2, "c": 0}
