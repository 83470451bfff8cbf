"""The CUDA paths' decisions, checked on a CPU by standing in for the GPU queries."""

from __future__ import annotations

import pytest
import torch

from cnnlab.config.schema import make_config
from cnnlab.errors import ConfigError
from cnnlab.evaluation import precision as prec


def test_auto_picks_bf16_only_on_gpus_that_compute_it_natively(gpus):
    gpus((7, 0), (8, 0))  # a V100 as cuda:0, an A100 as cuda:1
    v100 = prec.resolve_precision("auto", "cuda:0")
    assert (v100.autocast_dtype, v100.grad_scaling) == (torch.float16, True)
    a100 = prec.resolve_precision("auto", "cuda:1")  # the run's device, not the current one
    assert (a100.autocast_dtype, a100.grad_scaling) == (torch.bfloat16, False)
    gpus((7, 5))  # a T4
    assert prec.resolve_precision("auto", "cuda").autocast_dtype == torch.float16
    gpus((9, 0))  # an H100
    assert prec.resolve_precision("auto", "auto").label == "cuda bf16 channels_last"


def test_a_gpu_number_the_machine_lacks_is_one_line(gpus):
    gpus((8, 0))
    with pytest.raises(
        ConfigError, match=r"'cuda:3' requested but this machine has 1 GPU \(cuda:0\)"
    ):
        prec.resolve_device("cuda:3")
    gpus((8, 0), (8, 0))
    with pytest.raises(ConfigError, match=r"has 2 GPUs \(cuda:0 to cuda:1\)"):
        prec.resolve_device("cuda:2")
    assert prec.resolve_device("cuda:1") == torch.device("cuda:1")
    for bad in ("cuda:abc", "cuda:", "cuda:-1", "cuda:1.5"):
        with pytest.raises(ConfigError, match="cuda:N with N a GPU number"):
            make_config({"device": bad})


def test_fp32_on_cuda_means_fp32_and_the_fast_paths_autotune():
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    try:
        cuda = torch.device("cuda")
        prec.configure_backends(prec.Precision(cuda, None, False, False))
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.benchmark
        prec.configure_backends(prec.Precision(cuda, torch.bfloat16, True, False))
        assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
        before = torch.backends.cudnn.benchmark
        prec.configure_backends(prec.Precision(torch.device("cpu"), None, False, False))
        assert torch.backends.cudnn.benchmark == before  # a CPU run changes nothing
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = saved


def test_a_run_is_rescored_with_its_own_precision_unless_asked(gpus):
    gpus((9, 0))
    trained_fp32 = {"precision": "fp32", "eval_batch_size": 256}
    assert prec.run_precision(trained_fp32, "auto").autocast_dtype is None  # not bf16
    assert prec.run_precision(trained_fp32, "auto", "bf16").autocast_dtype == torch.bfloat16
    assert prec.run_precision({}, "auto").autocast_dtype == torch.bfloat16  # auto, as trained


def test_evaluate_uses_the_runs_precision_and_eval_batch_size(data_dir, tmp_path, monkeypatch):
    from cnnlab.config.schema import make_config
    from cnnlab.data.loader import DeviceLoader
    from cnnlab.inference.evaluate import evaluate_checkpoint
    from cnnlab.training.loop import train

    cfg = make_config(
        {"model": "mlp", "epochs": 1, "data_dir": str(data_dir), "precision": "fp32",
         "eval_batch_size": 50}
    )  # fmt: skip
    record = train(cfg, tmp_path / "run")
    sizes = []
    real_init = DeviceLoader.__init__

    def spy(self, *args, **kwargs):
        sizes.append(kwargs.get("batch_size"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(DeviceLoader, "__init__", spy)
    report = evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert sizes == [50]
    assert report.accuracy == pytest.approx(record.summary.final.test_acc, abs=1e-9)


def test_the_loss_scale_is_saved_with_the_checkpoint_and_restored_on_resume(
    data_dir, tmp_path, monkeypatch
):
    """fp16 with loss scaling is a CUDA path; the same code runs here with the policy
    stood in for (fp16 autocast and a GradScaler on the CPU)."""
    from cnnlab.config.schema import make_config
    from cnnlab.training import loop
    from cnnlab.training.checkpoint import load_checkpoint

    scaled = prec.Precision(torch.device("cpu"), torch.float16, False, True)
    monkeypatch.setattr(loop, "resolve_precision", lambda *args: scaled)
    cfg = make_config({"model": "mlp", "epochs": 1, "data_dir": str(data_dir)})
    loop.train(cfg, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt").scaler_state
    assert saved is not None and saved["scale"] > 0 and "_growth_tracker" in saved

    restored = []
    real = torch.amp.GradScaler.load_state_dict
    monkeypatch.setattr(
        torch.amp.GradScaler, "load_state_dict",
        lambda self, state: (restored.append(state), real(self, state))[1],
    )  # fmt: skip
    loop.train(cfg, tmp_path / "run", resume=True)
    assert restored == [saved]
