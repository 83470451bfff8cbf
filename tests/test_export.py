"""`cnnlab export`: ONNX and TorchScript round trips, metadata, and a check that can fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import raises_one_line

from cnnlab.cli import main
from cnnlab.data.loader import Normalization
from cnnlab.inference import export as export_mod
from cnnlab.inference.export import (
    ExportCheckError,
    check_inputs,
    check_outputs,
    export_checkpoint,
    reference_logits,
)
from cnnlab.models.layers import data_fitted_layers
from cnnlab.models.registry import build_model, resolve_model
from cnnlab.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

pytest.importorskip("onnxruntime", reason="ONNX export needs pip install -e '.[export]'")

MODELS = {
    "lenet5": ({}, (1, 32, 32)),
    "lenet5-bn": ({"batch_norm": True}, (1, 32, 32)),
}


def make_checkpoint(
    path: Path,
    args: dict,
    shape: tuple[int, int, int],
    dataset: str,
    data_dir: Path | None,
    model_name: str = "lenet5",
) -> Path:
    """A checkpoint (LeNet-5 unless named) with random weights and, with batch norm,
    non-trivial statistics; a whitening layer is fitted to random images."""
    torch.manual_seed(0)
    spec = resolve_model(model_name, args)
    model = build_model(spec, shape, 10)
    for layer in data_fitted_layers(model):
        layer.fit(torch.rand(64, *shape) * torch.linspace(0.2, 2, shape[-1]))
    state = model.state_dict()
    for name, value in state.items():
        # Untrained batch norm is the identity (mean 0, var 1); give it statistics so
        # that an export that dropped or mis-folded it would show.
        if name.endswith("running_mean"):
            value.copy_(torch.randn_like(value) * 0.5)
        elif name.endswith("running_var"):
            value.copy_(torch.rand_like(value) + 0.5)
    c = shape[0]
    ckpt = Checkpoint(
        model_spec=spec.model_dump(mode="json"),
        classes=[f"c{i}" for i in range(10)],
        input_shape=shape,
        normalization=Normalization((0.13,) * c, (0.31,) * c),
        state_dict=state,
        # fp32: an ONNX file is fp32, and `auto` would re-score in bf16 on a CPU that has it.
        config={
            "dataset": dataset,
            "data_dir": str(data_dir) if data_dir else None,
            "precision": "fp32",
        },
    )
    save_checkpoint(ckpt, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(data_dir, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    return {
        name: make_checkpoint(folder / f"{name}.pt", args, shape, "mnist", data_dir)
        for name, (args, shape) in MODELS.items()
    }


@pytest.fixture(scope="module")
def onnx_exports(checkpoints, tmp_path_factory) -> dict[str, export_mod.ExportResult]:
    """Each checkpoint exported to ONNX once (the exporter takes seconds per model)."""
    folder = tmp_path_factory.mktemp("onnx")
    return {
        name: export_checkpoint(path, folder / f"{name}.onnx") for name, path in checkpoints.items()
    }


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.slow
def test_onnx_round_trip_matches_pytorch_with_metadata(name, onnx_exports, checkpoints):
    import onnxruntime

    result = onnx_exports[name]
    assert result.format == "onnx"
    assert result.max_abs_diff <= 1e-4
    assert result.checked_on == "200 mnist test images"  # the real split, not random inputs
    assert sorted(p.name for p in result.path.parent.iterdir()) == sorted(
        f"{n}.onnx" for n in MODELS
    )  # no temporary files left behind, no external weight files
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["cnnlab"])
    check_metadata(meta)
    # The batch axis is free, and normalisation is inside: raw [0, 1] pixels go in.
    ckpt = load_checkpoint(checkpoints[name])
    for n in (1, 5):
        x = torch.rand(n, 1, 32, 32)
        (got,) = session.run(["logits"], {"image": x.numpy()})
        np.testing.assert_allclose(got, reference_logits(ckpt, x).numpy(), atol=1e-4)


def check_metadata(meta: dict) -> None:
    assert meta["format"] == "cnnlab-export/1"
    assert meta["classes"] == [f"c{i}" for i in range(10)]
    assert meta["input"]["shape"] == ["batch", 1, 32, 32]
    assert meta["input"]["layout"] == "NCHW" and meta["input"]["range"] == [0.0, 1.0]
    assert meta["input"]["mean"] == [0.13] and meta["input"]["std"] == [0.31]
    assert "inside the graph" in meta["input"]["normalization"]
    assert meta["input"]["content_size"] == [28, 28]  # MNIST is 28x28 padded to 32x32
    assert meta["output"]["shape"] == ["batch", 10]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", list(MODELS))
def test_torchscript_round_trip_matches_pytorch_with_metadata(name, checkpoints, tmp_path):
    result = export_checkpoint(checkpoints[name], tmp_path / "model.pt")
    assert result.format == "torchscript" and result.max_abs_diff <= 1e-4
    extra = {"cnnlab.json": ""}
    loaded = torch.jit.load(str(result.path), _extra_files=extra)
    check_metadata(json.loads(extra["cnnlab.json"]))
    x = torch.rand(3, 1, 32, 32)
    expected = reference_logits(load_checkpoint(checkpoints[name]), x)
    torch.testing.assert_close(loaded(x), expected, atol=1e-4, rtol=0)


def test_export_agrees_with_predict_preprocessing(onnx_exports, checkpoints, tmp_path):
    """Predict's [0, 1] arrays fed to the ONNX file give predict's probabilities."""
    import onnxruntime
    from PIL import Image

    from cnnlab.inference.images import InputSpec, prepare_image
    from cnnlab.inference.predict import predict_files

    ckpt = load_checkpoint(checkpoints["lenet5-bn"])
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(path)
        paths.append(path)
    spec = InputSpec.for_checkpoint(ckpt)
    batch = np.stack([prepare_image(p, spec).array for p in paths])
    session = onnxruntime.InferenceSession(
        str(onnx_exports["lenet5-bn"].path), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(["logits"], {"image": batch})
    probs = torch.softmax(torch.from_numpy(logits), 1)
    for row, pred in zip(probs, predict_files(ckpt, paths, top_k=10, device="cpu"), strict=True):
        got = dict(pred.top)
        np.testing.assert_allclose(
            [got[f"c{i}"] for i in range(10)], row.numpy(), atol=1e-4, rtol=0
        )


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_whitening_model_exports_to_both_formats(data_dir, tmp_path):
    model_file = tmp_path / "whitened.toml"
    model_file.write_text(
        'layer = [\n  { type = "whiten", kernel = 2 }, { type = "gelu" },\n'
        '  { type = "conv", filters = 8, kernel = 3 }, { type = "batch_norm" },\n'
        '  { type = "global_max_pool" }, { type = "dense" },\n]\n'
    )
    ckpt = make_checkpoint(tmp_path / "w.pt", {}, (1, 32, 32), "mnist", data_dir, str(model_file))
    for suffix in ("onnx", "pt"):
        result = export_checkpoint(ckpt, tmp_path / f"w-export.{suffix}")
        assert result.max_abs_diff <= 1e-4 and result.checked_on == "200 mnist test images"


def test_without_the_dataset_the_check_uses_random_images_and_says_so(tmp_path):
    path = make_checkpoint(
        tmp_path / "c.pt", {}, (3, 32, 32), f"folder:{tmp_path / 'gone'}", data_dir=None
    )
    inputs = check_inputs(load_checkpoint(path), None, n=8)
    assert inputs.images.shape == (8, 3, 32, 32)
    assert inputs.description.startswith("8 random images (dataset 'folder:")
    result = export_checkpoint(path, tmp_path / "rgb.pt")
    assert "random images" in result.checked_on and result.max_abs_diff <= 1e-4
    assert json.loads(json.dumps(result.metadata))["input"]["channels"] == "RGB"


def test_a_corrupted_onnx_file_fails_the_check(onnx_exports, checkpoints, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_exports["lenet5"].path))
    weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    ckpt = load_checkpoint(checkpoints["lenet5"])
    x = torch.rand(16, 1, 32, 32)
    got, _ = export_mod.RUNNERS["onnx"](broken, x)
    with raises_one_line(ExportCheckError, "onnx export differs from PyTorch by up to"):
        check_outputs(got, reference_logits(ckpt, x), 1e-4, "onnx", "16 images")


def test_a_mismatching_export_exits_1_with_the_difference_and_writes_nothing(
    checkpoints, tmp_path, monkeypatch, capsys
):
    write = export_mod.WRITERS["torchscript"]

    def write_perturbed(model, example, path, meta):
        with torch.no_grad():
            next(model.parameters()).add_(0.05)  # the export no longer matches PyTorch
        write(model, example, path, meta)

    monkeypatch.setitem(export_mod.WRITERS, "torchscript", write_perturbed)
    out = tmp_path / "model.pt"
    out.write_bytes(b"the previous export")
    status = main(["export", str(checkpoints["lenet5"]), str(out), "--format", "torchscript"])
    err = " ".join(capsys.readouterr().err.split())
    assert status == 1
    assert "torchscript export differs from PyTorch by up to" in err
    assert "(tolerance 1e-04); nothing written" in err
    assert out.read_bytes() == b"the previous export"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_an_export_that_cannot_be_loaded_back_fails(checkpoints, tmp_path, monkeypatch):
    def write_garbage(model, example, path, meta):
        Path(path).write_bytes(b"not a model")

    monkeypatch.setitem(export_mod.WRITERS, "onnx", write_garbage)
    with raises_one_line(ExportCheckError, "could not be loaded back", "nothing written"):
        export_checkpoint(checkpoints["lenet5"], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_tolerance_is_enforced(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)  # nothing can pass
    with raises_one_line(ExportCheckError, "differs from PyTorch by up to", "200 mnist test"):
        export_checkpoint(checkpoints["lenet5"], tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_export_command_and_usage_errors(checkpoints, tmp_path, capsys):
    out = tmp_path / "lenet.ts"
    assert main(["export", str(checkpoints["lenet5"]), str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"wrote {out} (torchscript" in printed
    assert "checked on 200 mnist test images: max |export - PyTorch| =" in printed
    assert main(["export", str(checkpoints["lenet5"]), str(tmp_path / "m.bin")]) == 2
    assert "pass --format onnx or torchscript" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.pt"), str(out)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_export_help_teaches(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--format onnx" in text and "inside the graph" in text
