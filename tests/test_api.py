"""The Python API: cnnlab.train / run_study / load_results / predict, your own model and
data from numpy arrays, each used as a notebook would."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import learnable_digits
from PIL import Image

import cnnlab
from cnnlab.cli.app import main
from cnnlab.errors import ConfigError, DataError
from cnnlab.training.checkpoint import load_checkpoint


def test_train_takes_the_clis_settings_and_returns_a_typed_record(data_dir, tmp_path):
    record = cnnlab.train(
        model="mlp", dataset="mnist", epochs=2, lr=3e-3, data_dir=str(data_dir),
        out=tmp_path / "run",
    )  # fmt: skip
    assert record.run_dir == tmp_path / "run" and (record.run_dir / "curves.png").is_file()
    assert 0 < record.summary.final.test_acc <= 1 and len(record.history) == 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").config["optimizer"]["lr"] == 3e-3
    pandas = pytest.importorskip("pandas")
    frame = record.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and list(frame["epoch"]) == [1, 2]
    again = cnnlab.train(tmp_path / "run", out=tmp_path / "run2", seed=1)  # a run's settings
    assert again.summary.seed == 1 and again.summary.model == "mlp"


def test_a_misspelt_setting_is_one_line_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown setting 'lrr'.*did you mean 'lr'"):
        cnnlab.train(model="mlp", lrr=0.1)


def keras_style(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 1) floats in [0, 1], as Keras and many notebooks hold images."""
    images, labels = learnable_digits(n, seed)
    return images[..., None].astype(np.float32) / 255.0, labels


def test_data_from_numpy_arrays_trains_and_names_itself_by_content(tmp_path):
    x, y = keras_style(600, 0)
    xt, yt = keras_style(200, 1)
    data = cnnlab.Dataset.from_arrays(x, y, xt, yt, classes=[f"c{i}" for i in range(10)])
    assert data.train.images.shape == (600, 1, 28, 28) and data.train.images.dtype == np.uint8
    assert data.name.startswith("arrays:arrays#")
    record = cnnlab.train(model="mlp", data=data, epochs=3, lr=3e-3, out=tmp_path / "run")
    assert record.summary.final.test_acc > 0.5  # a bar per class: learnable
    assert record.summary.classes[0] == "c0" and record.summary.dataset == data.name
    other = cnnlab.Dataset.from_arrays(x[:300], y[:300], xt, yt)
    assert other.name != data.name  # other arrays, other run ids
    with pytest.raises(DataError, match=r"x_train: images of shape \(600, 28\) are not"):
        cnnlab.Dataset.from_arrays(x[:, :, 0, 0], y, xt, yt)
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
        cnnlab.Dataset.from_arrays(x * 255, y, xt, yt)
    with pytest.raises(DataError, match="600 images but 599 labels"):
        cnnlab.Dataset.from_arrays(x, y[:-1], xt, yt)
    # The CLI cannot load arrays that only a Python process held: one line saying so.
    code = main(["evaluate", str(tmp_path / "run" / "checkpoint.pt"), "--dataset", data.name])
    assert code != 0


@cnnlab.register_model("tiny-api-net")
def tiny_net(in_shape, num_classes, width: int = 16):
    from torch import nn

    c, h, w = in_shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(), nn.Linear(width, num_classes)
    )


def test_your_own_model_by_name_by_import_path_and_as_a_function(data_dir, tmp_path):
    by_name = cnnlab.train(model="tiny-api-net", model_args={"width": 8}, epochs=1,
                           data_dir=str(data_dir), out=tmp_path / "a")  # fmt: skip
    spec = load_checkpoint(tmp_path / "a" / "checkpoint.pt").model_spec
    assert spec["factory"] == f"{__name__}:tiny_net" and spec["args"] == {"width": 8}
    assert by_name.summary.params == 28 * 28 * 8 + 8 + 8 * 10 + 10
    as_function = cnnlab.train(model=tiny_net, epochs=1, data_dir=str(data_dir), out=tmp_path / "b")
    assert as_function.summary.params > by_name.summary.params  # width 16, the default
    with pytest.raises(ConfigError, match=r"unknown argument 'depth'; allowed: width"):
        cnnlab.train(model="tiny-api-net", model_args={"depth": 3})
    exported = tmp_path / "tiny.pt"
    assert (
        main(
            [
                "export",
                str(tmp_path / "a" / "checkpoint.pt"),
                str(exported),
                "--format",
                "torchscript",
            ]
        )
        == 0
    )
    assert exported.is_file()  # rebuilt from the recorded factory, checked against PyTorch
    img = tmp_path / "digit.png"
    Image.fromarray(learnable_digits(1, 5)[0][0]).save(img)
    [prediction] = cnnlab.predict(tmp_path / "a" / "checkpoint.pt", img)
    assert prediction.error is None and len(prediction.top) == 3


def test_a_factory_module_that_is_gone_is_one_line(data_dir, tmp_path, monkeypatch, capsys):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(
        "from torch import nn\n\n"
        "def make(in_shape, num_classes):\n"
        "    c, h, w = in_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = ["train", "--model", "mynets.small:make", "--epochs", "1", "--quiet"]
    assert main([*args, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert main(["evaluate", str(out / "checkpoint.pt"), "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    for name in ("mynets", "mynets.small"):
        monkeypatch.delitem(sys.modules, name)
    assert main(["evaluate", str(out / "checkpoint.pt"), "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model factory 'mynets.small:make': cannot import mynets.small" in err
    assert "PYTHONPATH" in err and len(err.splitlines()) == 1


STUDY = """\
[study]
name = "api-study"
dataset = "mnist"
seeds = [0, 1]
[defaults]
data_dir = "{data_dir}"
epochs = 2
[[variant]]
name = "mlp"
model = "mlp"
[[variant]]
name = "mine"
model = "{factory}"
"""


def test_run_study_and_load_results_return_tables(data_dir, tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data_dir=data_dir, factory=f"{__name__}:tiny_net"))
    results = cnnlab.run_study(study, out=tmp_path / "out", epochs_scale=0.5)
    assert [r.status for r in results.runs] == ["done"] * 4
    assert (tmp_path / "out" / "report.html").is_file()
    loaded = cnnlab.load_results(tmp_path / "out")
    assert [r.run_id for r in loaded.runs] == [r.run_id for r in results.runs]
    pytest.importorskip("pandas")
    runs = loaded.to_dataframe()
    assert len(runs) == 4 and set(runs["variant"]) == {"mlp", "mine"}
    assert set(runs["setting.model"]) == {"mlp", f"{__name__}:tiny_net"}
    epochs = loaded.to_dataframe("epochs")
    assert len(epochs) == 4 and set(epochs["epoch"]) == {1}  # 2 epochs x 0.5


@pytest.mark.slow
def test_a_factory_module_in_the_current_folder_is_found_as_python_m_finds_it(data_dir, tmp_path):
    from fresh import run_cnnlab

    (tmp_path / "mymodels.py").write_text(
        "from torch import nn\n\n"
        "def flat(in_shape, num_classes):\n"
        "    c, h, w = in_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))\n"
    )
    args = ["train", "--model", "mymodels:flat", "--epochs", "1", "--quiet"]
    done = run_cnnlab([*args, "--data-dir", str(data_dir), "--out", "run"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_load_dataset_reads_a_built_in_dataset_and_names_a_misspelt_one(data_dir):
    data = cnnlab.load_dataset("mnist", data_dir=data_dir)
    assert data.train.images.shape[1:] == (1, 28, 28) and len(data.classes) == 10
    assert len(data.test) == 200
    with pytest.raises(ConfigError, match="did you mean 'mnist'"):
        cnnlab.load_dataset("mnsit", data_dir=data_dir)


NET_MODULE = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.body(x)
"""


def _predict_elsewhere(checkpoint, image, cwd):
    """`cnnlab predict` in a fresh process: what it can rebuild there, and only that."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "cnnlab", "predict", str(checkpoint), str(image)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_an_nn_module_class_or_object_trains_and_says_what_another_process_can_rebuild(
    data_dir, tmp_path, monkeypatch
):
    from torch import nn

    (tmp_path / "mymodels.py").write_text(NET_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from mymodels import Net  # a class taking num_classes, as torchvision's and timm's do

    settings = dict(dataset="mnist", data_dir=str(data_dir), epochs=1, precision="fp32")
    by_class = cnnlab.train(model=Net, model_args={"width": 8}, out=tmp_path / "cls", **settings)
    assert by_class.summary.params == 8 * 9 + 8 + 8 * 10 + 10
    image = tmp_path / "digit.png"
    Image.fromarray(learnable_digits(1, 0)[0][0]).save(image)
    done = _predict_elsewhere(tmp_path / "cls" / "checkpoint.pt", image, tmp_path)
    assert done.returncode == 0, done.stderr

    with pytest.warns(UserWarning, match="cannot rebuild it: move its code into a module"):
        by_object = cnnlab.train(model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
                                 out=tmp_path / "obj", **settings)  # fmt: skip
    assert by_object.summary.final.test_acc > 0.1
    done = _predict_elsewhere(tmp_path / "obj" / "checkpoint.pt", image, tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "was defined in the script or notebook that trained it" in done.stderr


def test_progress_shows_by_default_in_a_notebook_or_a_terminal_and_not_in_a_pipe(monkeypatch):
    import types

    from cnnlab import api

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert api._show_progress(None) is False and api._show_progress(True) is True
    kernel = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert api._show_progress(None) is True and api._show_progress(False) is False
    monkeypatch.delitem(sys.modules, "IPython")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert api._show_progress(None) is True


def test_far_sparser_labels_than_the_classes_they_imply_are_refused():
    """One label 1,000,000 among 0-9 would build a million-way output layer silently."""
    x = np.zeros((20, 8, 8), np.uint8)
    y = np.arange(20) % 10
    sparse = y.copy()
    sparse[0] = 1_000_000
    with pytest.raises(DataError, match=r"only 11 of them occur; number the classes 0 \.\. 10"):
        cnnlab.Dataset.from_arrays(x, sparse, x, y)
    assert len(cnnlab.Dataset.from_arrays(x, sparse, x, y, classes=1_000_001).classes) == 1_000_001
    assert len(cnnlab.Dataset.from_arrays(x, y, x, y).classes) == 10
