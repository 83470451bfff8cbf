"""Checkpoints are validated when read: one line naming the file and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_predict import random_checkpoint

from cnnlab.errors import DataError
from cnnlab.training.checkpoint import load_checkpoint


def edited(tmp_path: Path, change) -> Path:
    path = random_checkpoint(tmp_path / "good.pt")
    payload = torch.load(path, weights_only=True)
    change(payload)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    return bad


def first_weight(p) -> str:
    return next(k for k, v in p["state_dict"].items() if v.is_floating_point())


def set_weight_nan(p):
    p["state_dict"][first_weight(p)].view(-1)[0] = float("nan")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("state_dict"), "'state_dict' is missing or not a dict"),
        (lambda p: p.update(classes=[]), "its class names are missing"),
        (lambda p: p.update(input_shape=[1, 32]), "is not three positive sizes"),
        (lambda p: p["normalization"].update(std=[0.0]), "not finite with positive std"),
        (lambda p: p["normalization"].update(mean=[0.1, 0.2]), "one mean and std per channel"),
        (set_weight_nan, "holds NaN or infinite values"),
    ],
)
def test_damaged_checkpoints_are_refused_when_read(tmp_path, change, message):
    bad = edited(tmp_path, change)
    with pytest.raises(DataError) as info:
        load_checkpoint(bad)
    text = str(info.value)
    assert text.startswith(str(bad)) and message in text and "\n" not in text


def test_weights_that_do_not_fit_the_model_name_the_file(tmp_path):
    bad = edited(tmp_path, lambda p: p.update(classes=["a", "b", "c"]))  # a 10-way head
    ckpt = load_checkpoint(bad)
    with pytest.raises(DataError, match=rf"^{bad}: its weights do not fit the model"):
        ckpt.build_model()
    missing = edited(tmp_path, lambda p: p["state_dict"].pop(first_weight(p)))
    with pytest.raises(DataError, match="its weights do not fit the model"):
        load_checkpoint(missing).build_model()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_malicious_checkpoint_is_refused_saying_what_it_asked_for(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cnnlab-checkpoint/1", "evil": Evil()}, path, pickle_protocol=2)
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "refused: it asks to load" in text and "system" in text
    assert "weights_only" not in text and not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()
