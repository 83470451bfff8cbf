"""Models as TOML files: every layer type, whitening, the shipped model files, one-line errors, and summaries."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from fakedata import raises_one_line
from rich.table import Table
from test_models import (
    CIFAR,
    MODELS_DIR,
    SHIPPED,
    build,
    config_error,
    n_params,
    one_thread,  # noqa: F401 (autouse fixtures)
    write,
)
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.layers import (
    Conv2dSame,
    PatchWhitening,
    data_fitted_layers,
)
from cnnlab.models.registry import (
    build_model,
    render_summary,
    resolve_model,
    summarize,
)
from cnnlab.models.spec import LAYER_TYPES

# --- the TOML format ------------------------------------------------------------------

EVERY_LAYER = """
name = "zoo"
init = "he_normal"

[[layer]]
type = "conv"
filters = 8
kernel = [3, 5]
stride = 2
padding = "same"
activation = "gelu"
init = "glorot_normal"
[[layer]]
type = "batch_norm"
momentum = 0.01
eps = 0.001
[[layer]]
type = "activation"
fn = "leaky_relu"
negative_slope = 0.2
[[layer]]
type = "conv"
filters = 8
kernel = 3
padding = 1
bias = false
[[layer]]
type = "relu"
[[layer]]
type = "max_pool"
size = 3
stride = 2
padding = "same"
[[layer]]
type = "avg_pool"
size = 2
padding = "same"
[[layer]]
type = "leaky_relu"
[[layer]]
type = "conv"
filters = "classes"
kernel = 1
[[layer]]
type = "tanh"
[[layer]]
type = "max_pool"
size = 2
stride = 1
padding = 1
[[layer]]
type = "sigmoid"
[[layer]]
type = "avg_pool"
size = 2
[[layer]]
type = "elu"
[[layer]]
type = "silu"
[[layer]]
type = "gelu"
[[layer]]
type = "dropout"
rate = 0.1
[[layer]]
type = "global_avg_pool"
[[layer]]
type = "dense"
units = 16
activation = "relu"
[[layer]]
type = "batch_norm"
[[layer]]
type = "dense"
"""

FLAT_LAYERS = """
layer = [
  { type = "whiten", kernel = 3, eps = 1e-3 },
  { type = "conv", filters = 4, kernel = 3, padding = "valid" },
  { type = "global_max_pool" },
  { type = "flatten" },
  { type = "dense", units = "classes" },
]
"""


def test_every_layer_type_builds_and_runs(tmp_path: Path) -> None:
    used = {
        line.split('"')[1]
        for text in (EVERY_LAYER, FLAT_LAYERS)
        for line in text.splitlines()
        if "type =" in line
    }
    assert used == set(LAYER_TYPES)
    zoo = build(write(tmp_path, EVERY_LAYER))
    flat = build(write(tmp_path, FLAT_LAYERS, "flat.toml"))
    for model in (zoo, flat):
        out = model(torch.randn(2, *CIFAR))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        out.sum().backward()
    assert isinstance(zoo.conv1, Conv2dSame) and zoo.conv1(torch.zeros(1, 3, 32, 32)).shape[
        -2:
    ] == (16, 16)
    assert zoo.conv9.out_channels == 10 and zoo.conv4.bias is None and zoo.conv4.padding == (1, 1)
    assert isinstance(zoo.batch_norm2, nn.BatchNorm2d) and zoo.batch_norm2.momentum == 0.01
    assert isinstance(zoo.batch_norm20, nn.BatchNorm1d)
    assert zoo.activation3.negative_slope == 0.2 and zoo.leaky_relu8.negative_slope == 0.01
    assert zoo.conv4.weight.abs().max() <= 2 * math.sqrt(2 / 72) / 0.87962566103423978 + 1e-6
    assert [name for name, _ in zoo.named_children()][:3] == ["conv1", "conv1_gelu", "batch_norm2"]
    assert flat.whiten1.out_channels == 2 * 3 * 3 * 3 and flat.whiten1.eps == 1e-3
    assert flat.whiten1.weight.grad is None and flat.whiten1.bias.grad is not None


def test_patch_whitening_decorrelates_the_patches_it_was_fitted_to() -> None:
    torch.manual_seed(0)
    images = torch.randn(300, 3, 16, 16)
    images[:, 1] = 0.9 * images[:, 0] + 0.1 * images[:, 1]  # strongly correlated channels
    images = images + 0.5 * images.roll(1, dims=3)  # and neighbouring pixels
    layer = PatchWhitening(3, (2, 2), eps=1e-8)
    layer.fit(images, chunk=64)  # chunks add up to the whole
    out = (layer(images) - layer.bias.view(1, -1, 1, 1)).detach()
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = half.T @ half / len(half)
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)
    assert torch.equal(out[:, 12:], -out[:, :12])  # each filter and its negative
    # Largest variance first: its filter is scaled down the most.
    norms = layer.weight[:12].flatten(1).norm(dim=1)
    assert (norms[1:] >= norms[:-1] - 1e-6).all() and norms[-1] > 10 * norms[0]


def test_whitening_must_come_first_and_is_fitted_before_training(tmp_path: Path) -> None:
    late = '[[layer]]\ntype = "relu"\n[[layer]]\ntype = "whiten"\n'
    with raises_one_line(ConfigError, "layer 2 (whiten): must be the first layer"):
        build(write(tmp_path, late))
    model = build(write(tmp_path, FLAT_LAYERS, "flat.toml"))
    assert data_fitted_layers(model) == [model.whiten1]
    assert data_fitted_layers(build(write(tmp_path, EVERY_LAYER, "zoo.toml"))) == []


def test_shipped_lenet5_file_is_the_builtin_lenet5() -> None:
    from_file = build(str(MODELS_DIR / "lenet5.toml"), (1, 32, 32))
    builtin = build("lenet5", (1, 32, 32))
    assert n_params(from_file) == 61_706
    assert [p.shape for p in from_file.parameters()] == [p.shape for p in builtin.parameters()]


SHIPPED_PARAMS = {
    "cnn4-1": 24_522,
    "cnn6-1": 29_930,
    "cnn6-2": 395_178,
    "cnn6-3": 168_394,
    "cnn7": 184_906,
    "cnn7-weightinit": 184_906,
    "cnn7-batchnorm": 185_866,
    "cnn7-dropout": 184_906,
    "cnn7-complex1": 185_866,
    "cnn7-complex2": 185_866,
    "vgg-like": 453_482,
    "lenet5": 62_006,
    # The fast recipes' networks (issue 5), counted on 3x32x32 like the rest.
    "mnist-fast": 22_586,
    "small-cnn": 34_714,
    "wide-cnn": 115_498,
    "deep-cnn": 274_730,
    "cifar10-fast": 1_161_282,  # 288 of them the frozen whitening filters
    "cifar10-fast-narrow": 295_106,
}


def test_every_shipped_model_file_is_counted() -> None:
    assert {p.stem for p in SHIPPED} == set(SHIPPED_PARAMS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_model_files_build_and_train(path: Path) -> None:
    spec = resolve_model(str(path))
    assert spec.name.removesuffix("-file") == path.stem and spec.description
    model = build_model(spec, CIFAR, 10)
    assert n_params(model) == SHIPPED_PARAMS[path.stem]
    out = model(torch.randn(2, *CIFAR))
    out.sum().backward()
    assert out.shape == (2, 10)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    fast = model.to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(torch.randn(2, *CIFAR).to(memory_format=torch.channels_last))
    assert torch.isfinite(out).all()
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and any(
        o in first for o in ("Seed 004", "seed 001", "recipe", "Seed 000")
    )


def test_seed_004_pools_shrink_32_to_1() -> None:
    model = build(str(MODELS_DIR / "cnn6-3.toml"))
    rows = summarize(model, CIFAR).rows
    assert [r.output_shape[-1] for r in rows if r.type == "MaxPool2dSame"] == [16, 8, 4, 2, 1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dropout"\nrate = 0.1\n'
            '[[layer]]\ntype = "conv"\nfilter = 8\nkernel = 3\n',
            "m.toml: layer 3 (conv): unknown key 'filter'; "
            "allowed: filters, kernel, stride, padding, bias, activation, init",
        ),
        (
            '[[layer]]\ntype = "conv2d"\n',
            'm.toml: layer 1: unknown type "conv2d"; allowed: conv, dense,',
        ),
        ('[[layer]]\ntype = "conv"\nfilters = 8\n', "m.toml: layer 1 (conv): missing key 'kernel'"),
        (
            '[[layer]]\ntype = "conv"\nfilters = "8"\nkernel = 3\n',
            'filters = "8": must be a positive integer',
        ),
        (
            '[[layer]]\ntype = "dense"\nunits = 4\nactivation = "softmax"\n',
            "activation = \"softmax\": must be 'relu'",
        ),
        (
            '[[layer]]\ntype = "max_pool"\nsize = 2\npadding = "full"\n',
            'must be "same", "valid" or a non-negative',
        ),
        ('[[layer]]\ntype = "dropout"\nrate = 1.0\n', "rate = 1.0: must be less than 1"),
        (
            '[[layer]]\ntype = "relu"\nnegative_slope = 0.1\n',
            "unknown key 'negative_slope'; allowed: only type",
        ),
        ('[[layer]]\ntype = "dense"\n\n[[layer]\ntype = "dense"\n', "m.toml: invalid TOML: "),
        (
            "layers = []\n",
            "unknown top-level key 'layers'; allowed: name, description, init, input_size, layer",
        ),
        (
            'init = "lecun"\n[[layer]]\ntype = "flatten"\n',
            "m.toml: init = \"lecun\": must be 'default'",
        ),
        ('[layer]\ntype = "dense"\n', "write each layer as a [[layer]] table"),
        ('name = "empty"\n', "m.toml: no layers"),
        (
            '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dense"\n[[layer]]\ntype = "dense"\n',
            "layer 2 (dense): missing key 'units'",
        ),
    ],
)
def test_bad_model_files_say_what_and_where_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path) and expected.replace("m.toml", path) in message


def test_bad_toml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[layer]]\ntype = "flatten"\nunits = \n')
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 3"):
        resolve_model(path)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: model file not found"):
        resolve_model(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            '{ type = "flatten" }, { type = "dense", units = 5 }',
            "outputs 5 values per image but the data has 10 classes",
        ),
        ('{ type = "dense" }', "layer 1 (dense): needs a flat input, got 3x32x32; add a flatten"),
        (
            '{ type = "flatten" }, { type = "conv", filters = 2, kernel = 1 }, { type = "dense" }',
            "layer 2 (conv): needs an image",
        ),
        (
            '{ type = "max_pool", size = 40 }, { type = "flatten" }, { type = "dense" }',
            "layer 1 (max_pool): cannot take an input of shape 3x32x32",
        ),
    ],
)
def test_shape_problems_name_the_layer_when_building(
    tmp_path: Path, layers: str, expected: str
) -> None:
    message = config_error(write(tmp_path, f"layer = [{layers}]\n"))
    assert expected in message


# --- summaries ------------------------------------------------------------------------


def test_summary_counts_conv_and_linear_macs() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 10)
    )
    model.train()
    summary = summarize(model, CIFAR)
    assert [r.macs for r in summary.rows] == [8 * 3 * 9 * 32 * 32, 0, 0, 8 * 32 * 32 * 10]
    assert [r.output_shape for r in summary.rows] == [(8, 32, 32), (8, 32, 32), (8192,), (10,)]
    assert summary.macs == 8 * 3 * 9 * 32 * 32 + 8192 * 10
    assert summary.params == summary.trainable_params == n_params(model)
    assert model.training
    table = render_summary(summary, title="tiny")
    assert isinstance(table, Table) and table.row_count == 4


def test_summary_of_a_residual_net_covers_every_parameter() -> None:
    model = build("resnet9")
    for p in model.fc.parameters():
        p.requires_grad_(False)
    summary = summarize(model, CIFAR)
    assert sum(r.params for r in summary.rows) == summary.params == 6_573_120
    assert summary.trainable_params == 6_573_120 - 5_120
    assert summary.rows[-1].output_shape == (10,)


def test_a_layer_too_large_to_allocate_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(
        'layer = [{ type = "flatten" }, { type = "dense", units = 100000000000 }, { type = "dense" }]\n'
    )
    with pytest.raises(
        ConfigError, match=r"layer 2 \(dense\): would hold 78,400,000,000,000 weights"
    ):
        build_model(resolve_model(str(path)), (1, 28, 28), 10)
