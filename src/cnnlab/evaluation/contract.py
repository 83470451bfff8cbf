"""What a model's input is: images shaped for it, normalised, optionally test-time augmented.

Training, ``cnnlab evaluate``, ``cnnlab predict`` and ``cnnlab export`` all feed models
through these functions, so the four can never disagree on how a picture becomes logits.
"""

from __future__ import annotations

import torch

from cnnlab.config.schema import TTA_MODES
from cnnlab.data.arrays import Split
from cnnlab.data.loader import Normalization, pad_to


def shape_for_model(split: Split, input_size: tuple[int, int] | None) -> Split:
    """Pad images to the model's preferred input size (MNIST 28x28 -> 32x32 for LeNet-5)."""
    if input_size is None:
        return split
    return split.with_images(pad_to(split.images, input_size))


def normalize(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Float (N, C, H, W) pixels in [0, 1] to the model's normalised units (a new tensor)."""
    mean, std = norm.tensors(x.device)
    return (x - mean) / std


class NormalizedModel(torch.nn.Module):
    """A model that takes [0, 1] pixels: the normalisation inside it (for exported graphs)."""

    def __init__(self, model: torch.nn.Module, norm: Normalization) -> None:
        super().__init__()
        self.model = model
        mean, std = norm.tensors(torch.device("cpu"))
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """fp32 logits of a normalised batch, with test-time augmentation ``tta`` (TTA_MODES).

    ``flip``: the mean of the logits of each image and its mirror image (2 passes).
    ``flip-translate``: that for the image (weight 1/2) and for the image shifted one pixel
    up-left and one down-right (1/4 each; reflected borders, as the ``pad`` augmentation
    fills them): 6 passes, the airbench write-up's test-time augmentation.
    ``translate``: the same without the mirror images (3 passes), for images that a mirror
    changes the meaning of, such as digits.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta {tta!r} is not one of {', '.join(TTA_MODES)}")

    mirror = tta in ("flip", "flip-translate")

    def view_logits(view: torch.Tensor) -> torch.Tensor:
        logits = model(view).float()
        return (logits + model(view.flip(3)).float()) / 2 if mirror else logits

    logits = view_logits(x)
    if tta not in ("flip-translate", "translate"):
        return logits
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = view_logits(padded[..., :h, :w]) + view_logits(padded[..., 2:, 2:])
    return logits / 2 + shifted / 4
