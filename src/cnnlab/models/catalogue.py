"""The built-in models by name: what each is and the input it was built for. Torch-free, so
that `cnnlab models list` starts at once; :mod:`cnnlab.models.registry` builds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    builder: str  # "module:function" under cnnlab.models
    description: str
    input_shape: tuple[int, int, int]  # (C, H, W) it was designed for: the seed's data
    pads_to: bool = False  # the trainer pads smaller images to input_shape's H x W


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "lenet5": BuiltinModel(
        "classic:lenet5",
        "LeNet-5 with ReLU and max-pool (source project 001); 61,706 params on 1x32x32; batch_norm option",
        (1, 32, 32),
        pads_to=True,
    ),
    "mlp": BuiltinModel(
        "classic:mlp",
        "MLP 1024-44-120-84-10 sized to match LeNet-5 (source project 001); hidden option",
        (1, 32, 32),
        pads_to=True,
    ),
    "mnist-cnn": BuiltinModel(
        "classic:mnist_cnn",
        "TF-tutorial MNIST CNN 32-64-128 + dense 625 (source project 000); batch_norm, keep_prob options",
        (1, 28, 28),
    ),
    "vgg13-leaky": BuiltinModel(
        "vgg:vgg13_leaky",
        "13 conv 3x3 + BN + LeakyReLU, pool on widening, dense 512 + dropout (source project 002)",
        (3, 32, 32),
    ),
    "cifar-dense": BuiltinModel(
        "cifar:cifar_dense",
        "8 conv 3x3 (64-512) + pools, fully connected head (source project 003, model 1)",
        (3, 32, 32),
    ),
    "cifar-avgpool": BuiltinModel(
        "cifar:cifar_avgpool",
        "8 conv 3x3 (64-512) + pools, global average pooling head (source project 003, model 2)",
        (3, 32, 32),
    ),
    "cifar-avgpool-dropout": BuiltinModel(
        "cifar:cifar_avgpool_dropout",
        "cifar-avgpool with dropout after each pool (source project 003, model 3); dropout option",
        (3, 32, 32),
    ),
    "resnet9": BuiltinModel(
        "resnet:resnet9", "Myrtle.ai DAWNBench ResNet-9, 6.57M params", (3, 32, 32)
    ),
    "resnet18": BuiltinModel(
        "resnet:resnet18",
        "ResNet-18, CIFAR variant (3x3 stem, no max-pool), 11.2M params",
        (3, 32, 32),
    ),
}


def list_models() -> list[tuple[str, str]]:
    """Builtin model names with a one-line description each."""
    return [(name, m.description) for name, m in BUILTIN_MODELS.items()]
