"""Layers PyTorch lacks: TensorFlow's 'same' padding, global pools, a constant scale, and
a patch-whitening conv fitted to the data.

TensorFlow ('same') pads so that the output has ceil(size / stride) positions and puts
any odd pixel of padding after the input, not before. PyTorch's integer padding is
symmetric, so Keras models that pool with (3, 3), (2, 2), 'same' cannot be written
with ``nn.MaxPool2d`` arguments alone; these modules reproduce TensorFlow exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Pair = tuple[int, int]


def same_pads(size: int, kernel: int, stride: int) -> Pair:
    """TensorFlow's 'same' padding of one dimension as (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _torch_pool_out(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Output length of PyTorch's pooling (aten ``pooling_output_shape``)."""
    out = (size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _SamePool2d(nn.Module):
    """Pooling with TensorFlow 'same' padding; padded positions never count.

    Where PyTorch's own padding plus ``ceil_mode`` gives the same windows (the usual
    case: stride 2 on even sizes), the native kernel runs; it is about twice as fast
    as padding a copy of the input first.
    """

    def __init__(self, kernel: Pair, stride: Pair) -> None:
        super().__init__()
        self.kernel_size = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        h, w = x.shape[-2:]
        (bh, ah), (bw, aw) = same_pads(h, kh, sh), same_pads(w, kw, sw)
        ceil_mode = ah > bh or aw > bw
        # The windows start at the same places (-before + i * stride); what can
        # differ is how many there are, so comparing output sizes is enough.
        if _torch_pool_out(h, kh, sh, bh, ceil_mode) == -(-h // sh) and _torch_pool_out(
            w, kw, sw, bw, ceil_mode
        ) == -(-w // sw):
            return self._native(x, (bh, bw), ceil_mode)
        return self._padded(x, (bw, aw, bh, ah))

    def _native(self, x: torch.Tensor, padding: Pair, ceil_mode: bool) -> torch.Tensor:
        raise NotImplementedError

    def _padded(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"


class MaxPool2dSame(_SamePool2d):
    """``MaxPooling2D(padding='same')`` of Keras/TensorFlow."""

    def _native(self, x: torch.Tensor, padding: Pair, ceil_mode: bool) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, padding, ceil_mode=ceil_mode)

    def _padded(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.kernel_size, self.stride)


class AvgPool2dSame(_SamePool2d):
    """``AveragePooling2D(padding='same')``: each window averages its real pixels only."""

    def _native(self, x: torch.Tensor, padding: Pair, ceil_mode: bool) -> torch.Tensor:
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, padding, ceil_mode=ceil_mode, count_include_pad=False
        )

    def _padded(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        sums = F.avg_pool2d(F.pad(x, pads), self.kernel_size, self.stride)
        counts = F.avg_pool2d(
            F.pad(x.new_ones((1, 1, *x.shape[-2:])), pads), self.kernel_size, self.stride
        )
        return sums / counts


class Conv2dSame(nn.Conv2d):
    """Convolution with TensorFlow 'same' padding, for the strides and even kernels
    where PyTorch's ``padding='same'`` is unsupported or pads differently."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: Pair, stride: Pair, bias: bool
    ) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        (bh, ah), (bw, aw) = same_pads(x.shape[-2], kh, sh), same_pads(x.shape[-1], kw, sw)
        if (bh, bw) == (ah, aw):
            return F.conv2d(x, self.weight, self.bias, self.stride, (bh, bw))
        return F.conv2d(F.pad(x, (bw, aw, bh, ah)), self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", padding='same'"


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: (N, C, H, W) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class GlobalMaxPool(nn.Module):
    """Maximum over the spatial dimensions: (N, C, H, W) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


class Scale(nn.Module):
    """Multiply by a constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class PatchWhitening(nn.Conv2d):
    """A conv whose frozen filters whiten k x k patches of the training images (see ``fit``).

    Until fitted its filters are random (like any conv's); ``fit`` replaces them. The
    filters are a parameter without gradient, so they travel in the state dict and
    checkpoints while the optimizer leaves them alone; the bias trains.
    """

    def __init__(self, channels: int, kernel: Pair, eps: float) -> None:
        super().__init__(channels, 2 * channels * kernel[0] * kernel[1], kernel, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, chunk: int = 256) -> None:
        """Set the filters from normalised (N, C, H, W) images: every k x k patch counts.

        The second moments of the patches (about zero, as the images are normalised) add
        up over chunks of images: 5,000 CIFAR images hold 4.8 M 2x2 patches.
        """
        c = self.in_channels
        kh, kw = self.kernel_size
        size = c * kh * kw
        moments = torch.zeros(size, size, dtype=torch.float64, device=images.device)
        count = 0
        for start in range(0, len(images), chunk):
            block = images[start : start + chunk].float()
            patches = block.unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
            flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, size).double()
            moments += flat.T @ flat
            count += len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(moments / max(count, 1))  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(0).clamp_min(0), eigenvectors.flip(1).T
        filters = eigenvectors / torch.sqrt(eigenvalues + self.eps).unsqueeze(1)
        filters = filters.reshape(size, c, kh, kw)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}, frozen filters"


def data_fitted_layers(model: nn.Module) -> list[PatchWhitening]:
    """Layers to fit to the training images before training (only a first layer can be:
    the model builder refuses whitening anywhere else)."""
    return [m for m in model.modules() if isinstance(m, PatchWhitening)]


def flat_features(features: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """How many values ``features`` outputs per image, traced on one zero image.

    Raises torch's RuntimeError when the input is too small for the layers; the
    registry turns that into a ConfigError naming the model and the shape.
    """
    was_training = features.training
    features.eval()
    with torch.no_grad():
        out = features(torch.zeros(1, *in_shape))
    features.train(was_training)
    return out[0].numel()
