"""`cnnlab export`: a checkpoint as ONNX or TorchScript, checked against PyTorch before it lands.

The exported graph takes float32 NCHW images in [0, 1] (gray, or RGB in that
order) and returns logits: the checkpoint's normalisation is baked into the
graph, so a consumer only has to scale pixels to [0, 1], the step nobody gets
wrong, and cannot apply the wrong mean and std. The batch axis is dynamic.
The metadata (classes, input shape, normalisation, what the input must be)
travels inside the file: ONNX ``metadata_props["cnnlab"]``, TorchScript extra
file ``cnnlab.json``, both the same JSON.

The file is written to a temporary name, loaded back with its own runtime
(onnxruntime, ``torch.jit.load``) and run on real test images of the
checkpoint's dataset; only when its logits match PyTorch's fp32 eval-mode
logits within TOLERANCE is it renamed onto the output path.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from cnnlab.atomic import atomic_path
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.evaluation.contract import NormalizedModel, normalize
from cnnlab.inference.images import content_size
from cnnlab.training.checkpoint import Checkpoint, load_checkpoint
from cnnlab.version import __version__

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")
SUFFIXES: dict[str, Format] = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}
METADATA_FORMAT = "cnnlab-export/1"
TOLERANCE = 1e-4  # max |export - PyTorch| on logits; fp32 reorderings stay near 1e-6
CHECK_IMAGES = 256
INPUT_NAME, OUTPUT_NAME = "image", "logits"


class ExportCheckError(CnnlabError):
    """The exported model does not compute what the checkpoint does."""


@dataclass(frozen=True)
class CheckInputs:
    images: torch.Tensor  # float32 (N, C, H, W) in [0, 1]
    description: str  # what they are, for the report line


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: Format
    metadata: dict[str, Any]
    max_abs_diff: float
    checked_on: str
    tolerance: float


def format_for(out: Path, fmt: str | None) -> Format:
    """``fmt`` if given, else the one ``out``'s suffix names (.onnx, .pt, .ts)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt}: not one of {', '.join(FORMATS)}")
        return fmt  # type: ignore[return-value]
    try:
        return SUFFIXES[out.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"{out}: cannot tell the format from the suffix; pass --format onnx or torchscript"
        ) from None


def export_metadata(ckpt: Checkpoint) -> dict[str, Any]:
    c, h, w = ckpt.input_shape
    content = content_size(ckpt)
    return {
        "format": METADATA_FORMAT,
        "cnnlab_version": __version__,
        "model": ckpt.model_spec.get("name", ""),
        "model_spec": ckpt.model_spec,
        "dataset": ckpt.config.get("dataset"),
        "classes": list(ckpt.classes),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", c, h, w],
            "dtype": "float32",
            "layout": "NCHW",
            "channels": "gray" if c == 1 else "RGB",
            "range": [0.0, 1.0],
            "normalization": "inside the graph: pass pixels / 255, do not normalise again",
            "mean": list(ckpt.normalization.mean),
            "std": list(ckpt.normalization.std),
            "content_size": list(content),
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(ckpt.classes)],
            "meaning": "logits; softmax gives class probabilities in the order of 'classes'",
        },
        # The graph is the bare model: a run evaluated with test-time augmentation
        # ("flip": mean of the logits of the image and its mirror image; "flip-translate"
        # and "translate": see cnnlab.evaluation.contract.tta_logits) needs the consumer
        # to do that to get the accuracy the run reported.
        "test_time_augmentation": ckpt.config.get("tta", "none"),
        "preprocessing": (
            f"scale the picture to fit {content[0]}x{content[1]} keeping its aspect ratio, "
            f"centre it on a {h}x{w} canvas, divide pixels by 255"
            + (
                "; gray models expect the training data's look (MNIST: a light figure on an "
                "exactly black background), as `cnnlab predict` prepares it"
                if c == 1
                else ""
            )
        ),
    }


def check_inputs(ckpt: Checkpoint, data_dir: Path | None, n: int = CHECK_IMAGES) -> CheckInputs:
    """The first ``n`` test images of the checkpoint's dataset, else seeded random images.

    Real images exercise the activations the model will see (saturated ReLUs, large
    logits) where random noise may not; random ones still catch a wrong graph.
    """
    from cnnlab.data.datasets import load_dataset
    from cnnlab.evaluation.contract import shape_for_model

    c, h, w = ckpt.input_shape
    name = str(ckpt.config.get("dataset", ""))
    if data_dir is None and ckpt.config.get("data_dir"):
        data_dir = Path(ckpt.config["data_dir"])
    try:
        test = shape_for_model(load_dataset(name, data_dir).test, (h, w))
    except CnnlabError as exc:
        return _random_inputs(ckpt, n, f"dataset {name!r} unusable: {str(exc).split(';')[0][:200]}")
    if test.shape != (c, h, w):
        shape = "x".join(map(str, test.shape))
        return _random_inputs(ckpt, n, f"dataset {name!r} has {shape} images, not {c}x{h}x{w}")
    images = torch.from_numpy(np.ascontiguousarray(test.images[:n])).float() / 255.0
    return CheckInputs(images, f"{len(images)} {name} test images")


def _random_inputs(ckpt: Checkpoint, n: int, why: str) -> CheckInputs:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((n, *ckpt.input_shape), generator=generator)
    return CheckInputs(images, f"{n} random images ({why})")


def _require(modules: tuple[str, ...], fmt: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"{fmt} export needs {', '.join(missing)}: pip install -e '.[export]' "
            "(or pip install onnx onnxscript onnxruntime)"
        )


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    _require(("onnx", "onnxscript", "onnxruntime"), "ONNX")
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecated internals
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    program.model.metadata_props["cnnlab"] = meta
    program.model.doc_string = "cnnlab export: " + json.loads(meta)["preprocessing"]
    # One self-contained file: small classifiers are far below protobuf's 2 GB limit.
    program.save(path, external_data=False)


def _run_onnx(path: Path, images: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    meta = session.get_modelmeta().custom_metadata_map.get("cnnlab")
    return torch.from_numpy(out), meta


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, meta: str) -> None:
    # torch.jit is deprecated upstream in favour of torch.export, but TorchScript is still
    # the format libtorch (C++) and older deployments load; its warnings say nothing new.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={"cnnlab.json": meta})


def _run_torchscript(path: Path, images: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    extra = {"cnnlab.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    with torch.inference_mode():
        out = loaded(images)
    raw = extra["cnnlab.json"]
    return out, (raw.decode() if isinstance(raw, bytes) else raw) or None


WRITERS: dict[Format, Callable[[nn.Module, torch.Tensor, Path, str], None]] = {
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
}
RUNNERS: dict[Format, Callable[[Path, torch.Tensor], tuple[torch.Tensor, str | None]]] = {
    "onnx": _run_onnx,
    "torchscript": _run_torchscript,
}


def reference_logits(ckpt: Checkpoint, images: torch.Tensor) -> torch.Tensor:
    """PyTorch's answer: fp32, eval mode, CPU, NCHW, normalisation applied outside the model."""
    model = ckpt.build_model().float().eval()
    with torch.inference_mode():
        return model(normalize(images, ckpt.normalization))


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    fmt: str | None = None,
    data_dir: Path | None = None,
) -> ExportResult:
    """Write ``checkpoint`` to ``out`` as ``fmt`` and check it; raises ExportCheckError."""
    out = Path(out)
    fmt_ = format_for(out, fmt)
    ckpt = load_checkpoint(checkpoint)
    inputs = check_inputs(ckpt, data_dir)
    expected = reference_logits(ckpt, inputs.images)
    model = NormalizedModel(ckpt.build_model().float(), ckpt.normalization).eval()
    # Traced and exported with a batch of 2: a batch of 1 would let the exporters
    # specialise the batch axis; the check then runs the full batch through it.
    example = inputs.images[:2].clone()
    metadata = export_metadata(ckpt)
    meta_json = json.dumps(metadata)
    with atomic_path(out, suffix=out.suffix) as tmp:
        try:
            WRITERS[fmt_](model, example, tmp, meta_json)
        except CnnlabError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CnnlabError(
                f"{checkpoint}: {fmt_} export of {metadata['model']} failed ({first}); "
                f"try the other --format"
            ) from None
        try:
            got, meta_back = RUNNERS[fmt_](tmp, inputs.images)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ExportCheckError(
                f"{fmt_} export could not be loaded back and run ({first}); nothing written"
            ) from None
        diff = check_outputs(got, expected, TOLERANCE, fmt_, inputs.description)
        if meta_back != meta_json:
            raise ExportCheckError(
                f"{fmt_} export: the metadata did not survive the round trip; nothing written"
            )
    return ExportResult(out, fmt_, metadata, diff, inputs.description, TOLERANCE)


def check_outputs(
    got: torch.Tensor, expected: torch.Tensor, tolerance: float, fmt: str, inputs: str
) -> float:
    """The max abs difference of ``got`` from ``expected``; raises ExportCheckError beyond tolerance."""
    if got.shape != expected.shape:
        raise ExportCheckError(
            f"{fmt} export gives logits of shape {tuple(got.shape)}, PyTorch "
            f"{tuple(expected.shape)}; nothing written"
        )
    diff = float((got.float() - expected.float()).abs().max())
    if not diff <= tolerance:  # also catches NaN
        raise ExportCheckError(
            f"{fmt} export differs from PyTorch by up to {diff:.3g} on {inputs} "
            f"(tolerance {tolerance:.0e}); nothing written"
        )
    return diff
