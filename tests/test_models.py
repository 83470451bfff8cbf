"""The model zoo: exact sizes, the TOML format, TF-'same' pooling, init schemes, summaries."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.init import INIT_NAMES, fans, init_weights
from cnnlab.models.layers import (
    AvgPool2dSame,
    Conv2dSame,
    MaxPool2dSame,
    same_pads,
)
from cnnlab.models.registry import (
    ModelSpec,
    build_model,
    list_models,
    preferred_input_size,
    resolve_model,
    summarize,
)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(MODELS_DIR.glob("*.toml"))
BUILTINS = [name for name, _ in list_models()]
CIFAR = (3, 32, 32)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # Batch-of-one work is all thread handoff: on a shared 2-core machine two
    # threads make each small op ~100x slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(
    name: str, in_shape: tuple[int, int, int] = CIFAR, num_classes: int = 10, **args: object
) -> nn.Module:
    return build_model(resolve_model(name, args), in_shape, num_classes)


def write(tmp_path: Path, text: str, name: str = "m.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def config_error(
    name_or_path: str, in_shape: tuple[int, int, int] = CIFAR, num_classes: int = 10
) -> str:
    with pytest.raises(ConfigError) as info:
        build_model(resolve_model(name_or_path), in_shape, num_classes)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- exact sizes of the seed models -------------------------------------------------


def test_lenet5_has_the_seed_parameter_count_layer_by_layer() -> None:
    model = build("lenet5", (1, 32, 32))
    rows = {row.name: row.params for row in summarize(model, (1, 32, 32)).rows if row.params}
    assert rows == {"c1": 156, "c3": 2_416, "c5": 48_120, "f6": 10_164, "output": 850}
    assert n_params(model) == 61_706


def test_lenet5_batch_norm_adds_only_the_norm_parameters() -> None:
    model = build("lenet5", (1, 32, 32), batch_norm=True)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [6, 16, 120, 84]
    assert n_params(model) == 61_706 + 2 * (6 + 16 + 120 + 84)


def test_lenet5_refuses_unpadded_mnist_with_the_size_it_wants() -> None:
    message = config_error("lenet5", (1, 28, 28))
    assert "lenet5" in message and "1x28x28" in message and "32x32" in message


def test_mlp_is_1024_44_120_84_10() -> None:
    # The seed reports 61,014, from two slips in its arithmetic (44 x 1025 is
    # 45,100, not 44,660; 120 x 45 is 5,400, not 5,340); the layers it lists have 61,514.
    model = build("mlp", (1, 32, 32))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (1024, 44),
        (44, 120),
        (120, 84),
        (84, 10),
    ]
    assert [n_params(m) for m in linears] == [45_100, 5_400, 10_164, 850]
    assert n_params(model) == 61_514


def test_mnist_cnn_follows_the_tutorial_and_its_options() -> None:
    model = build("mnist-cnn", (1, 28, 28))
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [32, 64, 128]
    assert model.fc.in_features == 4 * 4 * 128 and model.fc.out_features == 625
    assert all(m.p == pytest.approx(0.2) for m in model.modules() if isinstance(m, nn.Dropout))
    assert n_params(model) == 1_380_005
    plain = build("mnist_cnn", (3, 32, 32), batch_norm="false", keep_prob="0.5")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert {m.p for m in plain.modules() if isinstance(m, nn.Dropout)} == {0.5}
    assert plain.fc.in_features == 4 * 4 * 128


def test_vgg13_leaky_has_13_convs_and_pools_only_where_width_grows() -> None:
    model = build("vgg13-leaky")
    kinds = [type(m).__name__ for m in model.children()]
    assert kinds.count("Conv2d") == 13 and kinds.count("MaxPool2d") == 3
    pools_after = [model[i - 3].out_channels for i, k in enumerate(kinds) if k == "MaxPool2d"]
    assert pools_after == [64, 128, 256]
    assert model.fc.in_features == 512 * 4 * 4
    bn_then_act = [(kinds[i - 1], k) for i, k in enumerate(kinds) if k == "LeakyReLU"]
    assert set(bn_then_act) == {("BatchNorm2d", "LeakyReLU"), ("BatchNorm1d", "LeakyReLU")}


def test_cifar_models_share_the_conv_stack_and_differ_in_the_head() -> None:
    dense, avg, drop = build("cifar-dense"), build("cifar-avgpool"), build("cifar-avgpool-dropout")
    for model in (dense, avg, drop):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
        assert all(c.padding == (1, 1) and c.stride == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.Linear) for m in dense.modules()) == 3
    assert n_params(avg) == n_params(drop) == 4_690_506
    assert not any(isinstance(m, nn.Dropout) for m in avg.modules())
    assert [m.p for m in drop.modules() if isinstance(m, nn.Dropout)] == [0.25] * 4


def test_resnet18_matches_torchvision_resnet18_adapted_to_cifar() -> None:
    reference = torchvision.models.resnet18(num_classes=10)
    reference.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    reference.maxpool = nn.Identity()
    ours = build("resnet18")
    assert n_params(ours) == n_params(reference) == 11_173_962
    # Same tensors in the same order, names aside.
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]


def test_resnet9_is_the_myrtle_net() -> None:
    model = build("resnet9")
    convs = [(m.in_channels, m.out_channels) for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [
        (3, 64),
        (64, 128),
        (128, 128),
        (128, 128),
        (128, 256),
        (256, 512),
        (512, 512),
        (512, 512),
    ]
    conv_weights = sum(i * o * 9 for i, o in convs)
    bn = 2 * sum(o for _, o in convs)
    assert n_params(model) == conv_weights + bn + 512 * 10 == 6_573_120


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_run_in_channels_last_bf16(name: str) -> None:
    # 16x16 keeps the big nets quick; every one of them still fits it.
    in_shape = (1, 32, 32) if name in ("lenet5", "mlp") else (3, 16, 16)
    model = build(name, in_shape).to(memory_format=torch.channels_last)
    x = torch.randn(2, *in_shape).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()


# --- the registry ---------------------------------------------------------------------


def test_registry_lists_names_and_preferred_sizes() -> None:
    assert BUILTINS == [
        "lenet5",
        "mlp",
        "mnist-cnn",
        "vgg13-leaky",
        "cifar-dense",
        "cifar-avgpool",
        "cifar-avgpool-dropout",
        "resnet9",
        "resnet18",
    ]
    assert preferred_input_size(resolve_model("lenet5")) == (32, 32)
    assert preferred_input_size(resolve_model("mlp")) == (32, 32)
    assert preferred_input_size(resolve_model("resnet18")) is None
    assert preferred_input_size(resolve_model(str(MODELS_DIR / "lenet5.toml"))) == (32, 32)
    assert preferred_input_size(resolve_model(str(MODELS_DIR / "cnn7.toml"))) is None


def test_unknown_model_and_bad_arguments_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'lenet'.*lenet5, mlp.*\.toml"):
        resolve_model("lenet")
    with pytest.raises(
        ConfigError, match=r"unknown argument 'dropout'; allowed: batch_norm, keep_prob"
    ):
        resolve_model("mnist-cnn", {"dropout": 0.5})
    with pytest.raises(ConfigError, match=r"keep_prob = 1.5: must be less than or equal to 1"):
        resolve_model("mnist-cnn", {"keep_prob": 1.5})
    with pytest.raises(ConfigError, match=r"allowed: none"):
        resolve_model("resnet18", {"width": 2})
    path = write(tmp_path, '[[layer]]\ntype = "flatten"\n[[layer]]\ntype = "dense"\n')
    with pytest.raises(ConfigError, match=r"takes no arguments"):
        resolve_model(path, {"init": "he_uniform"})


def test_a_shipped_model_named_without_its_path_gets_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(MODELS_DIR.parent)
    with pytest.raises(
        ConfigError, match=r"unknown model 'cnn7' \(did you mean models/cnn7\.toml\?\)"
    ):
        resolve_model("cnn7")


def test_spec_json_round_trip_rebuilds_the_same_model_without_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cnn7.toml"
    shutil.copy(MODELS_DIR / "cnn7-complex2.toml", path)
    specs = [
        resolve_model(str(path)),
        resolve_model("mnist_cnn", {"keep_prob": 0.5}),
        resolve_model("mlp"),
    ]
    path.unlink()
    for spec in specs:
        restored = ModelSpec.model_validate_json(spec.model_dump_json())
        assert restored == spec
        first, again = build_model(spec, CIFAR, 10), build_model(restored, CIFAR, 10)
        shapes = {k: v.shape for k, v in first.state_dict().items()}
        assert shapes == {k: v.shape for k, v in again.state_dict().items()}
    assert specs[1].name == "mnist-cnn" and specs[1].args == {"batch_norm": True, "keep_prob": 0.5}
    assert specs[2].args == {"hidden": [44, 120, 84]}


# --- TF 'same' pooling and convolution -----------------------------------------------


def tf_same_pool_reference(x: torch.Tensor, k: int, s: int, op: str) -> torch.Tensor:
    """TensorFlow's definition, window by window: padded positions are ignored."""
    h, w = x.shape[-2:]
    (top, _), (left, _) = same_pads(h, k, s), same_pads(w, k, s)
    out = torch.empty(*x.shape[:2], -(-h // s), -(-w // s))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            r0, c0 = i * s - top, j * s - left
            window = x[..., max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            out[..., i, j] = window.amax(dim=(-2, -1)) if op == "max" else window.mean(dim=(-2, -1))
    return out


@pytest.mark.parametrize("size", [(32, 32), (7, 5), (1, 1), (2, 3), (6, 9)])
@pytest.mark.parametrize(("k", "s"), [(3, 2), (2, 2), (2, 1), (3, 1), (5, 3), (1, 2)])
def test_same_pools_match_tensorflow(size: tuple[int, int], k: int, s: int) -> None:
    x = torch.randn(2, 3, *size)
    for op, pool in (("max", MaxPool2dSame), ("avg", AvgPool2dSame)):
        expected = tf_same_pool_reference(x, k, s, op)
        torch.testing.assert_close(pool((k, k), (s, s))(x), expected)


def test_keras_pool_halves_32_down_to_1_like_explicit_minus_inf_padding() -> None:
    pool = MaxPool2dSame((3, 3), (2, 2))
    x = torch.randn(2, 4, 32, 32)
    sizes = []
    for _ in range(5):
        expected = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
        x = pool(x)
        torch.testing.assert_close(x, expected, rtol=0, atol=0)
        sizes.append(x.shape[-1])
    assert sizes == [16, 8, 4, 2, 1]


def test_same_conv_matches_padding_after_as_tensorflow_does() -> None:
    x = torch.randn(1, 2, 9, 8)
    strided = Conv2dSame(2, 4, (3, 3), (2, 2), bias=True)
    # 9 rows: 5 outputs, padding 1 above and 1 below; 8 columns: 4 outputs, 1 after.
    expected = F.conv2d(F.pad(x, (0, 1, 1, 1)), strided.weight, strided.bias, stride=2)
    torch.testing.assert_close(strided(x), expected)
    even = Conv2dSame(2, 4, (2, 4), (1, 1), bias=False)
    expected = F.conv2d(F.pad(x, (1, 2, 0, 1)), even.weight)
    torch.testing.assert_close(even(x), expected)


# --- initialisation -----------------------------------------------------------------


def conv_with(scheme: str) -> nn.Conv2d:
    conv = nn.Conv2d(64, 64, 3)
    init_weights(conv, scheme)  # type: ignore[arg-type]
    return conv


def test_uniform_inits_fill_their_keras_bounds() -> None:
    fan_in, fan_out = fans(conv_with("default").weight)
    assert (fan_in, fan_out) == (576, 576)
    bounds = {
        "default": 1 / math.sqrt(fan_in),
        "he_uniform": math.sqrt(6 / fan_in),
        "glorot_uniform": math.sqrt(6 / (fan_in + fan_out)),
    }
    for scheme, bound in bounds.items():
        w = conv_with(scheme).weight.abs()
        assert bound * 0.99 < w.max() <= bound, scheme


def test_normal_inits_are_truncated_with_the_keras_variance() -> None:
    for scheme, variance in (("he_normal", 2 / 576), ("glorot_normal", 2 / (576 + 576))):
        w = conv_with(scheme).weight
        assert w.std().item() == pytest.approx(math.sqrt(variance), rel=0.03), scheme
        assert w.abs().max() <= 2 * math.sqrt(variance) / 0.87962566103423978 + 1e-6


def test_named_inits_zero_the_bias_and_default_does_not() -> None:
    assert set(INIT_NAMES) == {
        "default",
        "he_uniform",
        "he_normal",
        "glorot_uniform",
        "glorot_normal",
    }
    assert conv_with("default").bias.abs().sum() > 0
    for scheme in INIT_NAMES[1:]:
        assert conv_with(scheme).bias.abs().sum() == 0


def test_model_init_is_the_default_and_layer_init_overrides_it() -> None:
    model = build(str(MODELS_DIR / "cnn7-weightinit.toml"))
    conv1, dense = model.conv1, model.dense12
    # conv1: fan_in 27, fan_out 288; he_uniform reaches past the glorot bound.
    assert conv1.weight.abs().max() > math.sqrt(6 / (27 + 288))
    assert conv1.weight.abs().max() <= math.sqrt(6 / 27)
    assert dense.weight.abs().max() <= math.sqrt(6 / (128 + 128))
    assert dense.bias.abs().sum() == 0
