"""Shared pieces of the batched ops and the geometric ones: flip, translate, rotate,
resized crop, pad-and-crop, cutout (see the package docstring for the conventions)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError

Tensor = torch.Tensor
MaybeGenerator = torch.Generator | None
P = TypeVar("P")

# ---------------------------------------------------------------------------------------------
# Shared pieces


def _uniform(x: Tensor, generator: MaybeGenerator, *shape: int) -> Tensor:
    """Uniform in [-1, 1) on x's device."""
    return torch.rand(shape, device=x.device, generator=generator) * 2 - 1


def _matrices(
    m00: Tensor, m01: Tensor, m02: Tensor, m10: Tensor, m11: Tensor, m12: Tensor
) -> Tensor:
    """(B, 3, 3) affine matrices from their six per-sample entries, each (B,)."""
    zero, one = torch.zeros_like(m00), torch.ones_like(m00)
    return torch.stack([m00, m01, m02, m10, m11, m12, zero, zero, one], dim=1).view(-1, 3, 3)


def warp(x: Tensor, matrix: Tensor, mode: Literal["bilinear", "nearest"] = "bilinear") -> Tensor:
    """Resample each image through its (B, 3, 3) output-to-input matrix; zero outside.

    Bilinear resampling at sub-pixel offsets blurs every augmented image a little, which
    test images never are; for thin strokes (digits) ``nearest`` avoids that mismatch.

    ``matrix`` is in centred pixel units (see the module docstring). The sampling grid is
    built as a separable sum rather than with ``F.affine_grid``: on CPU, affine_grid's batched
    matmul over an (H*W, 3) base grid takes ~8x longer than this sum, which makes a whole warp
    ~1.5x slower (benchmarks/augment.py).
    """
    b, _, h, w = x.shape
    m = matrix.to(device=x.device, dtype=x.dtype)
    xs = torch.arange(w, device=x.device, dtype=x.dtype) - (w - 1) / 2
    ys = torch.arange(h, device=x.device, dtype=x.dtype) - (h - 1) / 2
    grid = torch.empty(b, h, w, 2, device=x.device, dtype=x.dtype)
    for k, size in enumerate((w, h)):
        # grid_sample wants [-1, 1] over the pixel edges (align_corners=False): pixels * 2/size
        m_k = m[:, k] * (2 / size)
        row = torch.addcmul(m_k[:, 2, None], m_k[:, 1, None], ys)  # (B, H)
        col = m_k[:, 0, None] * xs  # (B, W)
        torch.add(row[:, :, None], col[:, None, :], out=grid[..., k])
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    # Keeps the documented [0, 1] whatever the kernel: its four weights are rounded separately.
    return out.clamp_(0.0, 1.0)


def _gather_pixels(src: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """out[b, c, i, j] = src[b, c, rows[b, i], cols[b, j]], one gather for the whole batch."""
    b, c, h_src, w_src = src.shape
    h, w = rows.shape[1], cols.shape[1]
    index = (rows[:, :, None] * w_src + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return src.reshape(b, c, h_src * w_src).gather(2, index).view(b, c, h, w)


def _flip_columns(cols: Tensor, flip: Tensor | None) -> Tensor:
    """Reverse each sample's column index where ``flip`` is set: a mirror folded into a gather."""
    return cols if flip is None else torch.where(flip[:, None], cols.flip(1), cols)


def _flip_matrix(flip: Tensor) -> Tensor:
    """(B, 3, 3) mirror matrices: x -> -x in centred coordinates where ``flip`` (B,) is set."""
    sign = 1.0 - 2.0 * flip.float()
    zero = torch.zeros_like(sign)
    return _matrices(sign, zero, zero, zero, torch.ones_like(sign), zero)


def _flip_gather(x: Tensor, flip: Tensor) -> Tensor:
    # A width-only gather with a (B, 1, 1, W) index: measured faster than both
    # torch.where(flip, x.flip(-1), x), which reads x twice, and the per-pixel index of
    # _gather_pixels, whose int64 index is twice the size of the image data.
    b, w = x.shape[0], x.shape[-1]
    cols = _flip_columns(torch.arange(w, device=x.device).expand(b, w), flip)
    return x.gather(3, cols[:, None, None, :].expand_as(x))


def _reflect(index: Tensor, size: int) -> Tensor:
    """Map indices in [-(size-1), 2*(size-1)] into [0, size) like ``F.pad(mode='reflect')``."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


class _Op(ABC, Generic[P]):
    """An augmentation: random per-sample parameters plus a deterministic apply."""

    @abstractmethod
    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> P: ...

    @abstractmethod
    def apply(self, x: Tensor, params: P) -> Tensor: ...

    def __call__(self, x: Tensor, generator: MaybeGenerator = None) -> Tensor:
        return self.apply(x, self.sample_params(x, generator))


class _AffineOp(_Op[Tensor]):
    """A geometric op expressible as a per-sample affine matrix, so it can be fused."""

    @abstractmethod
    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        """(B, 3, 3) output-to-input matrices in centred pixel units."""

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        return warp(x, self.matrix(params, x.shape[-2], x.shape[-1]))


# ---------------------------------------------------------------------------------------------
# Ops


@dataclass(frozen=True)
class HorizontalFlip(_AffineOp):
    """Mirror left-right with probability ``p``. Params: (B,) bool, True = flipped."""

    p: float = 0.5

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        return torch.rand(x.shape[0], device=x.device, generator=generator) < self.p

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        return _flip_gather(x, params)

    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        return _flip_matrix(params)


@dataclass(frozen=True)
class Translate(_AffineOp):
    """Shift by up to ``fraction`` of the width/height, uniform per sample and axis.

    Sub-pixel shifts are bilinear; uncovered pixels are filled with 0 (Keras' shift with
    ``fill_mode='constant'``). Params: (B, 2) float shifts (dx, dy) in pixels, +x right, +y down.
    """

    fraction: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        h, w = x.shape[-2:]
        unit = _uniform(x, generator, x.shape[0], 2)
        return torch.stack([unit[:, 0] * (self.fraction * w), unit[:, 1] * (self.fraction * h)], 1)

    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        one, zero = torch.ones_like(params[:, 0]), torch.zeros_like(params[:, 0])
        return _matrices(one, zero, -params[:, 0], zero, one, -params[:, 1])


@dataclass(frozen=True)
class Rotate(_AffineOp):
    """Rotate about the centre by an angle uniform in [-degrees, degrees]; 0 fill outside.

    Params: (B,) angles in degrees, counter-clockwise as displayed (torchvision's convention).
    """

    degrees: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        return _uniform(x, generator, x.shape[0]) * self.degrees

    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        rad = params.float() * (math.pi / 180)
        cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
        # y points down, so a counter-clockwise turn on screen reads input at [[c, -s], [s, c]] p.
        return _matrices(cos, -sin, zero, sin, cos, zero)


@dataclass(frozen=True)
class ResizedCrop(_AffineOp):
    """Crop a random box and resize it back to the input size (bilinear).

    The box covers a fraction of the image area uniform in [min_scale, 1] with aspect ratio
    log-uniform in ``ratio`` (relative to the image's own aspect; identical to torchvision's
    for square images). Instead of torchvision's retry loop, the ratio range is narrowed per
    sample to the ratios whose box fits, so the area is always exact. The box is continuous,
    not snapped to pixels. Params: (B, 4) float boxes (top, left, height, width) in pixels.
    """

    min_scale: float
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        h, w = x.shape[-2:]
        u = torch.rand(x.shape[0], 4, device=x.device, generator=generator)
        area = self.min_scale + (1 - self.min_scale) * u[:, 0]
        # A box of relative area a and aspect r fits iff a <= r <= 1/a.
        low = area.clamp(min=self.ratio[0]).log()
        high = area.reciprocal().clamp(max=self.ratio[1]).log()
        ratio = (low + (high - low) * u[:, 1]).exp()
        box_h, box_w = h * (area / ratio).sqrt(), w * (area * ratio).sqrt()
        top, left = (h - box_h).clamp(min=0) * u[:, 2], (w - box_w).clamp(min=0) * u[:, 3]
        return torch.stack([top, left, box_h, box_w], dim=1)

    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        top, left, box_h, box_w = params.float().unbind(1)
        zero = torch.zeros_like(top)
        return _matrices(
            box_w / width,
            zero,
            left + box_w / 2 - width / 2,
            zero,
            box_h / height,
            top + box_h / 2 - height / 2,
        )


@dataclass(frozen=True)
class PadCrop(_Op[Tensor]):
    """Pad ``pad`` pixels on every side, then crop a random window of the input size.

    ``mode='reflect'`` mirrors without repeating the edge (``F.pad``'s reflect; needs
    pad < H, W), ``'zero'`` fills with 0. Implemented as one gather with the reflection done
    in index arithmetic: measured faster than padding and slicing windows, and than the
    affine path with integer shifts. Params: (B, 2) long window offsets (top, left) in the
    padded image, each in [0, 2 * pad].
    """

    pad: int
    mode: Literal["reflect", "zero"] = "reflect"

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        return torch.randint(
            0, 2 * self.pad + 1, (x.shape[0], 2), device=x.device, generator=generator
        )

    def apply(self, x: Tensor, params: Tensor, flip: Tensor | None = None) -> Tensor:
        """``flip``: optional (B,) bool; flipped samples are mirrored in the same gather."""
        h, w = x.shape[-2:]
        if self.mode == "reflect" and self.pad >= min(h, w):
            raise ConfigError(
                f"augment: pad={self.pad} with reflect padding needs images larger than "
                f"{self.pad} px; got {h}x{w}"
            )
        rows = params[:, 0, None] + torch.arange(h, device=x.device)
        cols = _flip_columns(params[:, 1, None] + torch.arange(w, device=x.device), flip)
        if self.mode == "zero":
            return _gather_pixels(F.pad(x, (self.pad,) * 4), rows, cols)
        return _gather_pixels(x, _reflect(rows - self.pad, h), _reflect(cols - self.pad, w))


@dataclass(frozen=True)
class Cutout(_Op[Tensor]):
    """Set a ``size`` x ``size`` square to 0 (black, before normalisation) in each image.

    The centre is uniform over the whole image, so the square may be clipped at the border
    (DeVries & Taylor 2017). Params: (B, 2) long centres (row, col); the square covers rows
    [row - size // 2, row - size // 2 + size) and likewise columns.
    """

    size: int

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        b, _, h, w = x.shape
        row = torch.randint(0, h, (b,), device=x.device, generator=generator)
        col = torch.randint(0, w, (b,), device=x.device, generator=generator)
        return torch.stack([row, col], 1)

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        start = params - self.size // 2
        rows = torch.arange(h, device=x.device) - start[:, 0, None]
        cols = torch.arange(w, device=x.device) - start[:, 1, None]
        out_rows = (rows < 0) | (rows >= self.size)
        out_cols = (cols < 0) | (cols >= self.size)
        keep = out_rows[:, None, :, None] | out_cols[:, None, None, :]
        return x * keep.to(x.dtype)
