"""The CUDA path on a real GPU: skipped without one, run by benchmarks/gpu_check.py.

Each test states a promise the README makes for GPU users: auto's precision fits the
GPU, a deterministic run resumes bit for bit, evaluate and predict agree with training,
fp16 trains with its loss scale kept.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import StopBeforeEpoch

from cnnlab.config.schema import make_config
from cnnlab.evaluation import precision as prec
from cnnlab.inference.evaluate import evaluate_checkpoint
from cnnlab.inference.predict import Predictor
from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.loop import train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def gpu_config(data_dir, **overrides):
    values = {
        "model": "lenet5", "epochs": 2, "batch_size": 50, "data_dir": str(data_dir),
        "device": "cuda", "precision": "auto", "model_args": {"batch_norm": True},
    }  # fmt: skip
    return make_config({**values, **overrides})


def test_auto_chooses_the_half_precision_this_gpu_computes_natively():
    p = prec.resolve_precision("auto", "cuda")
    native = torch.cuda.get_device_capability() >= (8, 0)
    assert p.autocast_dtype == (torch.bfloat16 if native else torch.float16)
    assert p.grad_scaling is not native and p.channels_last


def test_a_deterministic_run_resumed_ends_bit_for_bit_like_an_uninterrupted_one(data_dir, tmp_path):
    cfg = gpu_config(data_dir, epochs=3, deterministic=True, augment="translate=0.1")
    train(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", reporter=StopBeforeEpoch(3))
    train(cfg, tmp_path / "cut", resume=True)
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt").state_dict
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt").state_dict
    for key in full:
        torch.testing.assert_close(full[key], cut[key], rtol=0, atol=0)


def test_evaluate_and_predict_agree_with_training(data_dir, tmp_path):
    cfg = gpu_config(data_dir, deterministic=True)
    record = train(cfg, tmp_path / "run")
    report = evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt", device="cuda")
    assert report.accuracy == pytest.approx(record.summary.final.test_acc, abs=1e-9)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt.trained_on is not None and ckpt.trained_on["device"] == "cuda"
    images = np.random.default_rng(0).random((8, 1, 32, 32), dtype=np.float32)
    on_gpu = Predictor(ckpt, "cuda").probabilities(images)
    on_cpu = Predictor(ckpt, "cpu").probabilities(images)
    assert torch.allclose(on_gpu, on_cpu, atol=0.05)  # bf16/fp16 vs the CPU's precision


def test_fp16_trains_with_its_loss_scale_saved(data_dir, tmp_path):
    record = train(gpu_config(data_dir, precision="fp16", epochs=1), tmp_path / "run")
    assert np.isfinite(record.summary.final.test_loss)
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt").scaler_state
    assert saved is not None and saved["scale"] > 0


def test_fp32_on_cuda_is_fp32_not_tf32(data_dir, tmp_path):
    train(gpu_config(data_dir, precision="fp32", epochs=1), tmp_path / "run")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
