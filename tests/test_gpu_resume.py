"""Determinism, resume across machines and compile shapes: the GPU-readiness decisions that a
CPU can check (the device queries and the precision policy stood in for where needed)."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from cnnlab.cli.app import main
from cnnlab.config.identity import run_identity
from cnnlab.config.schema import config_dict, make_config
from cnnlab.errors import ConfigError
from cnnlab.evaluation import precision as prec
from cnnlab.training import loop
from cnnlab.training.checkpoint import load_checkpoint


def tiny(data_dir, **overrides):
    values = {"model": "mlp", "epochs": 1, "data_dir": str(data_dir), "device": "cpu"}
    return make_config({**values, **overrides})


@pytest.fixture
def saved_backends():
    """Restore the process-wide switches a test flips."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:3]
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[3:5]
    if saved[5] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[5]


def test_deterministic_turns_off_the_autotuner_and_picks_deterministic_kernels(
    saved_backends, monkeypatch
):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    amp = prec.Precision(torch.device("cuda"), torch.bfloat16, True, False)
    prec.configure_backends(amp, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == prec.CUBLAS_DETERMINISTIC
    prec.configure_backends(amp)  # the next run of the process, not deterministic
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark


def test_deterministic_is_a_setting_that_keeps_earlier_run_ids(data_dir, capsys):
    spec = {"name": "mlp", "args": {}}
    default = run_identity(config_dict(tiny(data_dir)), spec)
    assert "deterministic" not in default["settings"]  # ids recorded before it existed hold
    chosen = run_identity(config_dict(tiny(data_dir, deterministic=True)), spec)
    assert chosen["settings"]["deterministic"] is True
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--deterministic" in capsys.readouterr().out  # a flag, generated from the schema


def test_a_deterministic_cpu_run_trains_and_matches_the_default_one(
    data_dir, tmp_path, saved_backends
):
    plain = loop.train(tiny(data_dir), tmp_path / "plain").summary
    exact = loop.train(tiny(data_dir, deterministic=True), tmp_path / "exact").summary
    assert exact.final.test_loss == plain.final.test_loss  # CPU kernels are deterministic


CPU_AMP = prec.Precision(torch.device("cpu"), torch.bfloat16, True, False)
CPU_FP32 = prec.Precision(torch.device("cpu"), None, True, False)


def other_kind() -> prec.Precision:
    """What ``auto`` would mean on another kind of machine: fp32 where this CPU's own
    ``auto`` is bf16 (with AMX), bf16 elsewhere."""
    return CPU_FP32 if prec.resolve_precision("auto", "cpu") == CPU_AMP else CPU_AMP


def test_the_checkpoint_records_what_auto_resolved_to(data_dir, tmp_path):
    loop.train(tiny(data_dir, precision="auto"), tmp_path / "run")
    trained_on = load_checkpoint(tmp_path / "run" / "checkpoint.pt").trained_on
    here = prec.resolve_precision("auto", "cpu")
    assert trained_on == prec.precision_record(here)
    assert trained_on["label"] == here.label and trained_on["device"] == "cpu"


def test_a_resume_on_another_kind_of_machine_is_refused_unless_allowed(
    data_dir, tmp_path, monkeypatch, caplog
):
    cfg = tiny(data_dir, precision="auto")
    loop.train(cfg, tmp_path / "run")
    # The same folder, resumed where "auto" means another precision (a GPU machine, say).
    there = other_kind()
    monkeypatch.setattr(loop, "resolve_precision", lambda *args: there)
    with pytest.raises(ConfigError) as refused:
        loop.train(cfg, tmp_path / "run", resume=True)
    message = str(refused.value)
    here = prec.resolve_precision("auto", "cpu").label
    assert f"was trained as {here} and would go on here as {there.label}" in message
    assert "--allow-device-change" in message and "\n" not in message
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        loop.train(cfg, tmp_path / "run", resume=True, allow_device_change=True)
    assert f"continuing as {there.label}" in caplog.text


def test_the_cli_flag_reaches_the_resume(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    common = ["--model", "mlp", "--epochs", "1", "--data-dir", str(data_dir), "--quiet"]
    assert main(["train", *common, "--device", "cpu", "--out", str(out)]) == 0
    there = other_kind()
    monkeypatch.setattr(loop, "resolve_precision", lambda *args: there)
    (out / "summary.json").unlink()  # work left to do (a finished run has none: no refusal)
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    assert f"would go on here as {there.label}" in capsys.readouterr().err
    flags = ["train", "--resume", "--out", str(out), "--quiet", "--allow-device-change"]
    assert main(flags) == 0


def test_evaluate_rescored_exactly_as_trained_on_the_same_kind_of_device(gpus):
    trained = {"device": "cpu", "dtype": "bf16", "channels_last": True, "grad_scaling": False}
    same = prec.run_precision({"precision": "auto"}, "cpu", trained_on=trained)
    assert (same.autocast_dtype, same.channels_last) == (torch.bfloat16, True)
    asked = prec.run_precision({"precision": "auto"}, "cpu", "fp32", trained_on=trained)
    assert asked.autocast_dtype is None  # --precision wins
    gpus((9, 0))  # evaluated on a GPU machine: the run's setting, resolved for that GPU
    there = prec.run_precision({"precision": "auto"}, "cuda", trained_on=trained)
    assert there.label == "cuda bf16 channels_last" and there.device.type == "cuda"


def test_compiling_with_a_short_last_batch_compiles_once(data_dir, tmp_path, monkeypatch):
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    real = torch.compile
    monkeypatch.setattr(loop.torch, "compile", lambda model: real(model, backend=counter))
    torch._dynamo.reset()
    # 600 training images in batches of 64: the last batch holds 24.
    cfg = tiny(data_dir, compile=True, drop_last=False, batch_size=64, epochs=2)
    loop.train(cfg, tmp_path / "run")
    torch._dynamo.reset()
    assert counter.frame_count == 1


def test_an_operation_without_a_deterministic_kernel_is_one_line(
    data_dir, tmp_path, monkeypatch, saved_backends
):
    from cnnlab.errors import RunFailed

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, "
            "but you set 'torch.use_deterministic_algorithms(True)'. You can turn off ..."
        )

    monkeypatch.setattr(loop, "train_one_epoch", refuse)
    with pytest.raises(RunFailed) as failed:
        loop.train(tiny(data_dir, deterministic=True), tmp_path / "run")
    assert "uses adaptive_avg_pool2d_backward_cuda, which has no deterministic" in str(failed.value)
    with pytest.raises(RuntimeError, match="adaptive_avg_pool2d"):  # not deterministic: as is
        loop.train(tiny(data_dir), tmp_path / "other")
