"""`cnnlab predict` end to end, and real MNIST models on the hand-made digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fresh import run_cnnlab
from PIL import Image
from test_predict import DIGITS, bad_files, random_checkpoint, save

from cnnlab.cli import main
from cnnlab.cli import predict_command as cli_predict
from cnnlab.config.schema import make_config
from cnnlab.inference import images
from cnnlab.inference.predict import predict_files
from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.loop import train

# --- the command, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bar_checkpoint(data_dir, tmp_path_factory) -> Path:
    """LeNet-5 trained for one epoch on the learnable 'digits' (class = row of a bright bar)."""
    out = tmp_path_factory.mktemp("bars")
    cfg = make_config(
        {
            "dataset": "mnist",
            "model": "lenet5",
            "epochs": 2,
            "batch_size": 50,
            "optimizer": {"name": "adam", "lr": 3e-3},
            "precision": "fp32",
            "device": "cpu",
            "data_dir": str(data_dir),
        }
    )
    assert train(cfg, out).summary.final.test_acc > 0.8
    return out / "checkpoint.pt"


@pytest.fixture
def box_centred_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The learnable bars tell their class by the bar's height in the frame, which MNIST's
    centring by mass would erase; frame the pictures by their box for these tests."""
    monkeypatch.setitem(images.FRAMINGS, "mnist", images.Framing((28, 28), mass_centred=False))


def bar_photo(label: int, size: tuple[int, int], paper: int, ink: int) -> Image.Image:
    """The learnable digit of ``label`` drawn large, e.g. dark ink on light paper."""
    w, h = size
    x = np.full((h, w), paper, dtype=np.uint8)
    row = (2 + label * 24 // 10) / 28
    top, bottom = round(row * h), round((row + 2 / 28) * h)
    x[top:bottom, round(4 / 28 * w) : round(24 / 28 * w)] = ink
    return Image.fromarray(x).convert("RGB")


@pytest.mark.usefixtures("box_centred_mnist")
def test_predict_command_json_reports_bad_files_and_exits_1(bar_checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    expected = bad_files(folder)
    labels = {}
    for label in range(10):
        name = f"bar{label}.jpg" if label % 2 else f"bar{label}.png"
        paper, ink = (235, 20) if label % 3 else (15, 240)  # both polarities
        save(bar_photo(label, (56, 56), paper, ink), folder / name)
        labels[name] = str(label)

    status = main(["predict", str(bar_checkpoint), str(folder), "--json", "--top-k", "2"])
    out, err = capsys.readouterr()
    assert status == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 14
    by_name = {Path(r["file"]).name: r for r in rows}
    for name, fragment in expected.items():
        assert set(by_name[name]) == {"file", "error"} and fragment in by_name[name]["error"]
        assert name in err
    for name, label in labels.items():
        row = by_name[name]
        assert set(row) == {"file", "top", "inverted"}
        assert [set(t) for t in row["top"]] == [{"label", "probability"}] * 2
        assert row["top"][0]["label"] == label, row
        assert row["inverted"] is (int(label) % 3 != 0)
    assert "4 of 14 files could not be read" in " ".join(err.split())


@pytest.mark.usefixtures("box_centred_mnist")
def test_predict_command_table(bar_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative names: a table row stays on one line
    save(bar_photo(3, (90, 60), 250, 10), tmp_path / "three.png")
    assert main(["predict", str(bar_checkpoint), "three.png"]) == 0
    out = capsys.readouterr().out
    assert "three.png" in out and "#1" in out and "#3" in out
    row = next(line for line in out.splitlines() if "three.png" in line)
    assert row.split("│")[2].split()[0] == "3"
    # Many files: tab-separated lines, streamed, instead of a table.
    save(bar_photo(5, (60, 90), 250, 10), tmp_path / "five.png")
    monkeypatch.setattr(cli_predict, "TABLE_ROWS", 1)
    assert main(["predict", str(bar_checkpoint), "three.png", "five.png", "--top-k", "2"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(cells[0], cells[1].split()[0], len(cells)) for cells in lines] == [
        ("three.png", "3", 3),
        ("five.png", "5", 3),
    ]
    assert lines[0][1].endswith("%")


def test_predict_command_usage_errors_exit_2(bar_checkpoint, tmp_path, capsys):
    image = save(bar_photo(3, (28, 28), 0, 255), tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "missing.pt"), str(image)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(bar_checkpoint), str(empty)]) == 2
    assert "no image files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(bar_checkpoint), str(image), "--top-k", "0"])
    assert exit_info.value.code == 2
    assert "--top-k" in capsys.readouterr().err


def test_predict_help_teaches():
    result = subprocess.run(
        [sys.executable, "-m", "cnnlab", "predict", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--invert" in result.stdout
    assert "cnnlab predict runs/lenet5/checkpoint.pt" in result.stdout


# --- real MNIST, real hand-made digits ------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_lenet(tmp_path_factory) -> Path:
    """LeNet-5 after one epoch on the real MNIST, trained by the real `cnnlab train`."""
    data = os.environ.get("CNNLAB_DATA")
    if not data or not (Path(data) / "mnist").is_dir():
        pytest.skip("real data not found: set CNNLAB_DATA to a folder holding mnist/")
    out = tmp_path_factory.mktemp("mnist-lenet5")
    result = run_cnnlab(
        ["train", "--dataset", "mnist", "--model", "lenet5", "--epochs", "1",
         "--batch-size", "128", "--precision", "fp32", "--seed", "0", "--data-dir", data,
         "--out", str(out), "--quiet"],
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out / "checkpoint.pt"


@pytest.mark.realdata
@pytest.mark.slow
def test_real_mnist_model_reads_the_hand_made_digits(mnist_lenet):
    labels = json.loads((DIGITS / "labels.json").read_text())
    result = run_cnnlab(
        ["predict", str(mnist_lenet), str(DIGITS), "--invert", "auto", "--json", "--top-k", "1"]
    )
    assert result.returncode == 0, result.stderr
    got = {
        Path(r["file"]).name: r["top"][0]["label"]
        for r in map(json.loads, result.stdout.splitlines())
    }
    assert set(got) == set(labels)
    wrong = {name: (label, got[name]) for name, label in labels.items() if got[name] != label}
    assert not wrong, f"(expected, predicted): {wrong}"


@pytest.mark.realdata
@pytest.mark.slow  # its fixture trains LeNet-5 on real MNIST: 13 s alone, 30 s beside a test
def test_real_mnist_photographed_reads_as_well_as_the_raw_test_set(mnist_lenet, tmp_path):
    """MNIST test digits as ink on paper, enlarged and saved as JPEG, then predicted.

    The preprocessing must undo it: accuracy within a point of the raw images'.
    """
    from cnnlab.data.datasets import load_dataset
    from cnnlab.inference.predict import Predictor

    ckpt = load_checkpoint(mnist_lenet)
    test = load_dataset("mnist").test
    n = 300
    raw = np.pad(test.images[:n], ((0, 0), (0, 0), (2, 2), (2, 2))).astype(np.float32) / 255
    raw_acc = (
        Predictor(ckpt, "cpu").probabilities(raw).argmax(1).numpy() == test.labels[:n]
    ).mean()
    paths = []
    for i in range(n):
        ink_on_paper = Image.fromarray(255 - test.images[i, 0]).resize((84, 84), Image.BILINEAR)
        paths.append(save(ink_on_paper, tmp_path / f"{i:03d}.jpg", quality=85))
    preds = list(predict_files(ckpt, paths, top_k=1, device="cpu"))
    acc = np.mean([int(p.top[0][0]) == test.labels[i] for i, p in enumerate(preds)])
    assert all(p.inverted for p in preds)
    assert acc >= raw_acc - 0.01, (acc, raw_acc)


def test_the_hand_made_pictures_are_labelled_and_the_benchmark_scores_them(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "hand_made_digits.py"
    spec = importlib.util.spec_from_file_location("hand_made_digits", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    digits = [str(d) for d in range(10)]
    ckpt = random_checkpoint(tmp_path / "c.pt", (3, 32, 32), "digits-wild", digits)
    wild = DIGITS.parent / "digits-wild"
    labels = json.loads((wild / "labels.json").read_text())
    assert len(labels) >= 20 and set(labels.values()) == set(digits)
    assert sorted(labels) == sorted(p.name for p in wild.iterdir() if p.suffix in (".png", ".jpg"))
    from cnnlab.api import predict

    read = predict(ckpt, wild, top_k=1)
    assert len(read) == len(labels) and all(p.error is None and p.top for p in read)
    right, total, wrong = bench.score(ckpt, wild, "auto")
    assert total == len(labels) and right + len(wrong) == total
    assert bench.main([str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert f"| digits-wild | {right}/{total} |" in out and "| digits | " in out
