"""Bad checkpoints, images for predict, study and model files, flags and study folders
for the fault corpus. Each maker writes into the current directory and returns the argv."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import torch
from corpus_case import Case
from fakedata import write_mnist_like
from PIL import Image
from test_predict import random_checkpoint

MNIST = ["--dataset", "mnist", "--data-dir", "data"]


def data() -> None:
    write_mnist_like(Path("data/mnist"), n_train=30, n_test=20)


def checkpoint(change=None, raw: bytes | None = None) -> Path:
    path = random_checkpoint(Path("good.pt"))
    if raw is not None:
        Path("bad.pt").write_bytes(raw)
        return Path("bad.pt")
    if change is None:
        return path
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, "bad.pt")
    return Path("bad.pt")


def cut_checkpoint(size: int) -> bytes:
    """A real checkpoint's first ``size`` bytes: a copy interrupted."""
    return random_checkpoint(Path("whole.pt")).read_bytes()[:size]


def image(name: str = "digit.png", size: tuple[int, int] = (28, 28)) -> str:
    Image.new("L", size, 128).save(name)
    return name


def evaluate(change=None, raw=None) -> list[str]:
    data()
    return ["evaluate", str(checkpoint(change, raw)), "--data-dir", "data", "--out", "out/cm.png"]


def predict(change=None, raw=None) -> list[str]:
    return ["predict", str(checkpoint(change, raw)), image()]


def export(change=None, raw=None) -> list[str]:
    return ["export", str(checkpoint(change, raw)), "out/model.onnx"]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def malicious_plain_pickle() -> list[str]:
    import pickle

    Path("bad.pt").write_bytes(pickle.dumps({"x": Evil()}, protocol=4))
    return ["predict", "bad.pt", image()]


def malicious() -> list[str]:
    torch.save({"format": "cnnlab-checkpoint/1", "x": Evil()}, "bad.pt", pickle_protocol=2)
    return ["predict", "bad.pt", image()]


def plain_state_dict() -> list[str]:
    torch.save({"weight": torch.zeros(3)}, "bad.pt")
    return ["evaluate", "bad.pt", "--data-dir", "data"]


def first_weight(p) -> str:
    return next(k for k, v in p["state_dict"].items() if v.is_floating_point())


def nan_weight(p) -> None:
    p["state_dict"][first_weight(p)].view(-1)[0] = float("nan")


def predict_files(*write) -> list[str]:
    """predict on the files the writers make (each returns its path)."""
    return ["predict", str(checkpoint()), *(w() for w in write)]


def raw_file(name: str, data: bytes):
    def write() -> str:
        Path(name).write_bytes(data)
        return name

    return write


def large_png() -> str:
    Image.new("L", (200, 200)).save("large.png")
    return "large.png"


def symlink_loop() -> str:
    os.symlink("loop.png", "loop.png")
    return "loop.png"


def empty_folder() -> str:
    Path("images").mkdir()
    return "images"


def study(body: str, header: str = '[study]\nname = "s"\ndataset = "mnist"\nseeds = [0]\n'):
    def make() -> list[str]:
        data()
        text = header + '[defaults]\ndata_dir = "data"\nepochs = 1\nbatch_size = 10\n' + body
        Path("study.toml").write_text(text)
        return ["run", "study.toml", "--out", "out", "--quiet"]

    return make


VARIANT = '[[variant]]\nname = "a"\nmodel = "mlp"\n'


def not_utf8() -> list[str]:
    Path("study.toml").write_bytes(b'[study]\nname = "\xff\xfe"\n')
    return ["run", "study.toml", "--out", "out"]


def model_file(layers: str):
    def make() -> list[str]:
        data()
        Path("m.toml").write_text(f'name = "m"\nlayer = [\n{layers}\n]\n')
        return [
            "train",
            *MNIST,
            "--model",
            "m.toml",
            "--epochs",
            "1",
            "--batch-size",
            "10",
            "--out",
            "out",
        ]

    return make


def train(*flags: str, config: str | None = None):
    def make() -> list[str]:
        data()
        Path("taken").write_text("a file")
        if config is not None:
            Path("c.toml").write_text(config)
        argv = ["train", *MNIST, "--model", "mlp", "--epochs", "1", "--batch-size", "10"]
        return [*argv, "--out", "out", *flags]

    return make


def report_on(db: bytes | None = None, foreign: int | bool = False):
    def make() -> list[str]:
        Path("study").mkdir()
        if db is not None:
            Path("study/study.sqlite").write_bytes(db)
        if foreign:
            with sqlite3.connect("study/study.sqlite") as con:
                con.execute("create table notes (text)")
                if foreign is not True:  # a schema version, as cnnlab's own files carry
                    con.execute(f"pragma user_version = {int(foreign)}")
        return ["report", "study"]

    return make


def report_on_wal_db(version: int, truncate: int | None = None):
    """A study database in WAL mode (as `cnnlab run` writes them), of a newer schema or cut
    short: the report refuses it and leaves no -wal or -shm beside it."""

    def make() -> list[str]:
        Path("study").mkdir()
        with sqlite3.connect("study/study.sqlite") as con:
            con.execute("pragma journal_mode = wal")
            con.execute("create table studies (id integer primary key, name text)")
            con.executemany("insert into studies (name) values (?)", [("x" * 500,)] * 40)
            con.execute(f"pragma user_version = {version}")
        con.close()
        if truncate is not None:
            data = Path("study/study.sqlite").read_bytes()
            Path("study/study.sqlite").write_bytes(data[:truncate])
        return ["report", "study"]

    return make


def run_on_garbage_db() -> list[str]:
    argv = study(VARIANT)()
    Path("out").mkdir()
    Path("out/study.sqlite").write_bytes(b"not a database" * 20)
    return argv


INF = "inf"
CASES = [
    Case("ckpt-missing", lambda: ["predict", "nothing.pt", image()], 2, ("nothing.pt",)),
    Case("ckpt-zero-bytes", lambda: evaluate(raw=b""), 2, ("bad.pt",)),
    Case("ckpt-truncated", lambda: export(raw=b"PK\x03\x04" + b"\0" * 60), 2, ("bad.pt",)),
    Case("ckpt-cut-short", lambda: export(raw=cut_checkpoint(5000)), 2, ("bad.pt", "cut short")),
    Case("ckpt-text", lambda: predict(raw=b"hello, world\n"), 2, ("bad.pt",)),
    Case("ckpt-malicious", malicious, 2, ("bad.pt", "refused", "system")),
    Case("ckpt-malicious-plain-pickle", malicious_plain_pickle, 2, ("bad.pt", "not a readable")),
    Case("ckpt-plain-state-dict", plain_state_dict, 2, ("bad.pt", "not a cnnlab checkpoint")),
    Case("ckpt-no-weights", lambda: export(lambda p: p.pop("state_dict")), 2, ("state_dict",)),
    Case("ckpt-nan-weight", lambda: predict(nan_weight), 2, ("bad.pt", "NaN")),
    Case(
        "ckpt-zero-std",
        lambda: evaluate(lambda p: p["normalization"].update(std=[0.0])),
        2,
        ("bad.pt", "std"),
    ),
    Case(
        "ckpt-3-classes-10-way-head",
        lambda: export(lambda p: p.update(classes=["a", "b", "c"])),
        2,
        ("bad.pt", "do not fit", "size mismatch for", "torch.Size([3"),  # which weight, which shape
    ),
    Case(
        "ckpt-rgb-input-grey-weights",
        lambda: predict(lambda p: p.update(input_shape=[3, 32, 32])),
        2,
        ("bad.pt",),
    ),
    Case(
        "predict-missing-image",
        lambda: predict_files(image, lambda: "none.png"),
        1,
        ("none.png: no such file", "1 of 2 files"),
    ),
    Case("predict-empty-folder", lambda: predict_files(empty_folder), 2, ("images",)),
    Case(
        "predict-over-the-pixel-limit",
        lambda: predict_files(large_png),
        1,
        ("large.png: 200x200 pixels, more than the 10,000", "CNNLAB_MAX_IMAGE_PIXELS"),
        env={"CNNLAB_MAX_IMAGE_PIXELS": "10000"},
    ),
    Case(
        "predict-symlink-loop",
        lambda: predict_files(symlink_loop),
        1,
        ("loop.png: a symbolic link loop", "1 of 1 files could not be read"),
    ),
    Case(
        "predict-corrupt-png",
        lambda: predict_files(raw_file("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50)),
        1,
        ("x.png", "1 of 1 files could not be read"),
    ),
    Case(
        "predict-zero-bytes",
        lambda: predict_files(image, raw_file("empty.jpg", b"")),
        1,
        ("empty.jpg", "1 of 2 files"),
    ),
    Case(
        "predict-bomb",
        lambda: predict_files(lambda: image("bomb.png", (1500, 1500))),
        1,
        ("bomb.png",),
        bomb_limit=1_000_000,
    ),
    Case("study-missing", lambda: ["run", "none.toml"], 2, ("none.toml",)),
    Case("study-syntax", study('[[variant]\nname = "a"\n'), 2, ("study.toml", "line")),
    Case("study-not-utf8", not_utf8, 2, ("study.toml", "UTF-8")),
    Case("study-table", study("[defauts]\n" + VARIANT), 2, ("[defauts]", "[defaults]")),
    Case("study-key", study(VARIANT + "learning_rate = 0.1\n"), 2, ("learning_rate", "line")),
    Case("study-model", study(VARIANT.replace("mlp", "lenet6")), 2, ("lenet6", "lenet5")),
    Case(
        "study-dataset-name",
        study(VARIANT, '[study]\nname = "s"\ndataset = "mnits"\nseeds = [0]\n'),
        2,
        ("mnits", "mnist"),
    ),
    Case(
        "study-dataset-absent",
        study(VARIANT, '[study]\nname = "s"\ndataset = "cifar10"\nseeds = [0]\n'),
        2,
        ("cifar10", "not found"),
    ),
    Case("study-no-variants", study(""), 2, ("variant",)),
    Case("study-duplicate", study(VARIANT + VARIANT), 2, ("'a'",)),
    Case("study-early-stopping", study(VARIANT + "early_stopping = 2\n"), 2, ("val_fraction",)),
    Case(
        "study-lr-inf",
        study(VARIANT + f'optimizer = {{ name = "sgd", lr = {INF} }}\n'),
        2,
        ("lr", "finite"),
    ),
    Case("study-batch-too-big", study(VARIANT + "batch_size = 500\n"), 2, ("batch",)),
    Case("study-grid-key", study(VARIANT + '[grid]\n"optimizer.lrr" = [0.1]\n'), 2, ("lrr",)),
    Case(
        "study-epochs-scale-nan",
        lambda: [*study(VARIANT)(), "--epochs-scale", "nan"],
        2,
        ("--epochs-scale nan", "positive number"),
    ),
    Case(
        "study-epochs-scale-inf",
        lambda: [*study(VARIANT)(), "--epochs-scale", "inf"],
        2,
        ("--epochs-scale inf", "positive number"),
    ),
    Case(
        "study-run-fails",
        study(VARIANT + 'optimizer = { name = "sgd", lr = 1e6, momentum = 0.9 }\n'),
        1,
        ("1 of 1 runs failed",),
        writes=("out",),
    ),
    Case("model-layer-type", model_file('{ type = "convv" }'), 2, ("m.toml", "convv")),
    Case(
        "model-dense-1e11",
        model_file('{ type = "flatten" }, { type = "dense", units = 100000000000 },'),
        2,
        ("m.toml", "layer 2 (dense)", "weights, more than"),
    ),
    Case(
        "model-kernel-too-big",
        model_file('{ type = "conv", filters = 4, kernel = 40 }, { type = "flatten" }'),
        2,
        ("m.toml", "layer 1 (conv)", "Kernel size"),
    ),
    Case("model-layer-key", model_file('{ type = "relu", slope = 2 }'), 2, ("m.toml", "slope")),
    Case("model-syntax", model_file("{ type = "), 2, ("m.toml",)),
    Case("flag-seed-2^63", train("--seed", str(2**63)), 2, ("seed",)),
    Case("flag-lr-inf", train("--lr", "inf"), 2, ("lr", "finite")),
    Case("flag-lr-text", train("--lr", "fast"), 2, ("--lr", "fast")),
    Case("flag-out-file", train("--out", "taken"), 2, ("taken", "is a file")),
    Case("flag-augment", train("--augment", "spin=3"), 2, ("spin",)),
    Case("flag-nesterov-adam", train("--nesterov"), 2, ("nesterov",)),
    Case("flag-optimizer", train("--optimizer", "adma"), 2, ("adma", "did you mean 'adam'")),
    Case("flag-model", train("--model", "lenet6"), 2, ("lenet6",)),
    Case("flag-config-missing", train("--config", "none.toml"), 2, ("none.toml",)),
    Case("flag-config-key", train("--config", "c.toml", config="epoch = 3\n"), 2, ("epoch",)),
    Case("flag-per-class-0", lambda: ["data", "show", "mnist", "--per-class", "0"], 2, ("0",)),
    Case("flag-command", lambda: ["trian"], 2, ("did you mean 'train'",)),
    Case(
        "train-diverges",
        train("--optimizer", "sgd", "--lr", "1e6"),
        1,
        ("diverged",),
        writes=("out",),
    ),
    Case("run-garbage-db", run_on_garbage_db, 2, ("out/study.sqlite", "not a readable")),
    Case("report-missing", lambda: ["report", "nowhere"], 2, ("nowhere",)),
    Case("report-zero-byte-db", report_on(b""), 2, ("study.sqlite",)),
    Case("report-foreign-db", report_on(foreign=True), 2, ("study.sqlite",)),
    Case("report-foreign-db-versioned", report_on(foreign=3), 2, ("study.sqlite", "not a cnnlab")),
    Case("report-not-sqlite", report_on(b"not a database" * 20), 2, ("study.sqlite",)),
    Case("report-newer-schema-wal", report_on_wal_db(99), 2, ("schema 99", "upgrade cnnlab")),
    Case("report-truncated-wal-db", report_on_wal_db(4, truncate=6000), 2, ("study.sqlite",)),
    Case("compare-missing", lambda: ["compare", "a", "b"], 2, ("a",)),
]
