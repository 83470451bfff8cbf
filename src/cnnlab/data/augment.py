"""Batched random augmentation of float image batches.

Every op takes ``x``: float (B, C, H, W) with values in [0, 1], on any device, in either
memory format, and returns a new tensor of the same shape, dtype and device with values in
[0, 1] (the output may be contiguous where the input was channels_last; the input is never
modified). The one exception is :class:`Recolor`, which always returns 3 channels.

Random parameters are drawn per sample from the ``torch.Generator`` passed in (``None``
uses torch's global generator); on CUDA pass a CUDA generator. Each op splits into
``sample_params(x, generator)`` and a deterministic ``apply(x, params)`` so that tests and
callers can supply parameters explicitly. No op loops over samples in Python.

Geometric ops describe themselves as (B, 3, 3) matrices that map each OUTPUT pixel to the
INPUT position it reads, in pixel units centred on the image centre (x right, y down): the
convention of torchvision's ``affine``/``rotate``. :class:`Augment` multiplies them so that
crop + rotate + translate (+ flip) cost a single bilinear resample.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

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


class RecolorParams(NamedTuple):
    """Per-sample colours, each (B, 3) RGB in [0, 1], and (B,) bool inversion flags.

    ``keep_gray``: optional (B,) bool, the gray images left gray; ``texture``: optional
    (B, 3, H, W) field added to the background colour.
    """

    light: Tensor
    dark: Tensor
    invert: Tensor
    keep_gray: Tensor | None = None
    texture: Tensor | None = None


# ITU-R BT.601 luma weights; they sum to 1.
LUMA = (0.299, 0.587, 0.114)


def luminance(rgb: Tensor) -> Tensor:
    """BT.601 luma of (..., 3) RGB values."""
    return rgb @ torch.tensor(LUMA, device=rgb.device, dtype=rgb.dtype)


def with_luminance(rgb: Tensor, target: Tensor) -> Tensor:
    """Move each (B, 3) colour to luminance ``target`` (B,) by scaling it toward black or white.

    Luma is linear, so scaling toward black multiplies it and toward white mixes with 1:
    both hit the target exactly and stay inside [0, 1].
    """
    lum = luminance(rgb)[:, None]
    target = target[:, None]
    darker = rgb * (target / lum.clamp(min=1e-6))
    lighter = 1 - (1 - rgb) * ((1 - target) / (1 - lum).clamp(min=1e-6))
    return torch.where(target <= lum, darker, lighter).clamp_(0.0, 1.0)


def contrasting_colors(u: Tensor, min_contrast: float) -> tuple[Tensor, Tensor]:
    """(light, dark) (B, 3) colour pairs at least ``min_contrast`` apart in luma, from uniforms.

    ``u`` is (B, 8) uniform in [0, 1): two luminances, then a random RGB hue for each colour.
    The luminances are uniform over the pairs at least ``min_contrast`` apart, and each hue
    is rescaled to its luminance, so the constraint holds by construction, with no resampling.
    """
    # Sorted pairs of uniforms on [0, 1 - c], the upper one lifted by c: uniform over the
    # triangle light - dark >= c.
    pair = u[:, :2] * (1 - min_contrast)
    dark_lum, light_lum = pair.min(1).values, pair.max(1).values + min_contrast
    return with_luminance(u[:, 2:5], light_lum), with_luminance(u[:, 5:8], dark_lum)


def is_gray(x: Tensor) -> Tensor:
    """(B,) bool: the images whose channels are all equal (1-channel images are gray)."""
    if x.shape[1] == 1:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return (x == x[:, :1]).flatten(1).all(1)


@dataclass(frozen=True)
class Recolor(_Op[RecolorParams]):
    """Paint grayscale digits in random colours, for "digits in the wild" (SVHN-like) targets.

    Only gray images are recoloured (all channels equal; 1-channel input is gray); colour
    images pass through unchanged, so a batch mixing printed colour digits and MNIST paints
    only the MNIST ones. The output always has 3 channels. The gray value g is a foreground
    mask: ``bg * (1 - g) + fg * g``. The two colours come from :func:`contrasting_colors`,
    at least ``min_contrast`` apart in BT.601 luma. The digit gets the lighter colour
    (MNIST's polarity) unless inverted, with probability ``p_invert``.

    ``p_gray``: the probability that a gray image stays gray (expanded to 3 channels), so a
    model still sees plain digits. ``texture``: the background gets a random low-frequency
    colour texture (a 4x4 grid upsampled bilinearly) plus per-pixel noise, together at most
    an amplitude uniform in [0, texture]; the digit's colour stays flat.
    """

    p_invert: float = 0.5
    min_contrast: float = 0.3
    p_gray: float = 0.0
    texture: float = 0.0

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> RecolorParams:
        b, _, h, w = x.shape
        u = torch.rand(b, 9, device=x.device, generator=generator)
        light, dark = contrasting_colors(u[:, :8], self.min_contrast)
        # Extra draws only when asked for, so a plain `recolor` spec keeps its random stream.
        keep_gray = texture = None
        if self.p_gray > 0:
            keep_gray = torch.rand(b, device=x.device, generator=generator) < self.p_gray
        if self.texture > 0:
            texture = _texture(x, generator, self.texture, h, w)
        return RecolorParams(light, dark, u[:, 8] < self.p_invert, keep_gray, texture)

    def apply(self, x: Tensor, params: RecolorParams, painted: Tensor | None = None) -> Tensor:
        """``painted``: :meth:`recolored` of ``x`` and ``params``, when the caller has it."""
        gray = x if x.shape[1] == 1 else x.mean(1, keepdim=True)
        invert = params.invert[:, None]
        fg = torch.where(invert, params.dark, params.light).to(x.dtype)[:, :, None, None]
        bg = torch.where(invert, params.light, params.dark).to(x.dtype)[:, :, None, None]
        out = torch.addcmul(bg, fg - bg, gray)
        if params.texture is not None:
            # Added on its own (not to bg) so the digit's pixels keep exactly their flat colour.
            out = out.addcmul_(params.texture.to(x.dtype), 1 - gray)
        out = out.clamp_(0.0, 1.0)
        if x.shape[1] == 1 and params.keep_gray is None:
            return out  # every image is gray and recoloured: nothing to select
        if painted is None:
            painted = self.recolored(x, params)
        return torch.where(painted[:, None, None, None], out, x.expand(-1, 3, -1, -1))

    @staticmethod
    def recolored(x: Tensor, params: RecolorParams) -> Tensor:
        """(B,) bool: the images of ``x`` that ``apply`` paints (gray ones not kept gray)."""
        recolor = is_gray(x)
        if params.keep_gray is not None:
            recolor = recolor & ~params.keep_gray
        return recolor


_TEXTURE_GRID = 4  # the texture's cells across: blotches about a quarter of the image


def _texture(x: Tensor, generator: MaybeGenerator, amplitude: float, h: int, w: int) -> Tensor:
    """(B, 3, H, W) background texture: a smooth colour field plus pixel noise, |t| <= amp."""
    b = x.shape[0]
    amp = torch.rand(b, 1, 1, 1, device=x.device, generator=generator) * amplitude
    grid = _uniform(x, generator, b, 3, _TEXTURE_GRID, _TEXTURE_GRID)
    # Bilinear upsampling (align_corners) as two small matrix products: measured 3x faster
    # on CPU than F.interpolate from so tiny a grid.
    rows, cols = _lerp_matrix(h, x), _lerp_matrix(w, x)
    smooth = rows @ grid @ cols.T
    # One grain value per pixel, not per channel: a third of the draws, which dominate the cost.
    noise = _uniform(x, generator, b, 1, h, w)
    # Mostly smooth blotches (paint, lighting), some grain (sensor noise, paper).
    return (0.7 * smooth).add_(noise, alpha=0.3).mul_(amp)


def _lerp_matrix(size: int, x: Tensor) -> Tensor:
    """(size, _TEXTURE_GRID) weights of linear interpolation with the end points aligned."""
    position = torch.linspace(0, _TEXTURE_GRID - 1, size, device=x.device, dtype=x.dtype)
    nodes = torch.arange(_TEXTURE_GRID, device=x.device, dtype=x.dtype)
    return (1 - (position[:, None] - nodes).abs()).clamp_(min=0)


@dataclass(frozen=True)
class GaussianBlur(_Op[Tensor]):
    """Blur each image with its own Gaussian, sigma uniform in [0, ``sigma``] pixels.

    Separable: one grouped 1-D convolution along each axis for the whole batch, edges
    replicated (a zero border would darken it). The kernel spans 3 ``sigma`` each side; a
    sample's sigma near 0 gives a unit impulse, i.e. the identity. Params: (B,) sigmas.
    """

    sigma: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        return torch.rand(x.shape[0], device=x.device, generator=generator) * self.sigma

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        b, c, h, w = x.shape
        radius = max(1, math.ceil(3 * self.sigma))
        taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        sigma = params.to(device=x.device, dtype=x.dtype).clamp(min=1e-3)[:, None]
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
        y = x.reshape(1, b * c, h, w)
        rows = F.pad(y, (radius, radius, 0, 0), mode="replicate")
        y = F.conv2d(rows, kernel[:, None, None, :], groups=b * c)
        columns = F.pad(y, (0, 0, radius, radius), mode="replicate")
        y = F.conv2d(columns, kernel[:, None, :, None], groups=b * c)
        return y.view(b, c, h, w).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# The spec: what the command line, config.json and checkpoints carry


@dataclass(frozen=True)
class _Rule:
    """How one spec op is written, what it means and which values it takes."""

    usage: str
    meaning: str
    domain: str
    accepts: Callable[[float], bool]
    whole: bool = False
    bare: float | None = None  # the value of the op written without '=value'
    flag: bool = False  # written bare only, e.g. `nearest`

    def check(self, op: str, value: object) -> float | int:
        """The value as the op's number type, or ConfigError naming the op and its domain."""
        number = _as_number(value)
        if number is None or not self.accepts(number) or (self.whole and not number.is_integer()):
            raise ConfigError(f"augment: {op}={value} is invalid; {self.usage} takes {self.domain}")
        return int(number) if self.whole else number


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):  # bool is an int; True must not read as 1
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


# In the order Augment applies them, which is also the order to_string writes.
_RULES: dict[str, _Rule] = {
    "recolor": _Rule(
        "recolor[=p_invert]", "random colours for gray digits, p_invert default 0.5",
        "0 <= p_invert <= 1", lambda v: 0 <= v <= 1, bare=0.5,
    ),
    "gray": _Rule(
        "gray=p", "with recolor: probability a gray image stays gray",
        "0 <= p < 1", lambda v: 0 <= v < 1,
    ),
    "texture": _Rule(
        "texture=amp", "with recolor: textured noisy background of amplitude up to amp",
        "0 < amp <= 1", lambda v: 0 < v <= 1,
    ),
    "crop": _Rule(
        "crop=min_scale", "random resized crop of area min_scale..1",
        "0 < min_scale < 1", lambda v: 0 < v < 1,
    ),
    "rotate": _Rule(
        "rotate=deg", "rotate by up to ±deg degrees",
        "0 < deg <= 180", lambda v: 0 < v <= 180,
    ),
    "translate": _Rule(
        "translate=frac", "shift by up to frac of the size",
        "0 < frac < 1", lambda v: 0 < v < 1,
    ),
    "pad": _Rule(
        "pad=px", "reflect-pad px then random crop back",
        "a whole number px >= 1", lambda v: v >= 1, whole=True,
    ),
    "flip": _Rule(
        "flip[=p]", "mirror left-right with probability p, default 0.5",
        "0 < p <= 1", lambda v: 0 < v <= 1, bare=0.5,
    ),
    "blur": _Rule(
        "blur=sigma", "Gaussian blur, sigma uniform in 0..sigma px (with recolor: painted images only)",
        "0 < sigma <= 3", lambda v: 0 < v <= 3,
    ),
    "cutout": _Rule(
        "cutout=px", "zero a random px square",
        "a whole number px >= 1", lambda v: v >= 1, whole=True,
    ),
    "nearest": _Rule(
        "nearest", "nearest-neighbour instead of bilinear resampling for crop/rotate/translate",
        "no value", lambda v: v == 1, whole=True, bare=1, flag=True,
    ),
}  # fmt: skip

_VALID = "; ".join(f"{rule.usage} ({rule.meaning})" for rule in _RULES.values())


def augment_op_names() -> list[str]:
    """Every spec op, in application order."""
    return list(_RULES)


class AugmentSpec(BaseModel):
    """Which augmentations to apply and their strengths; ``None`` = off. Frozen, JSON-safe.

    Build one with :func:`parse_augment`; ``to_string()`` gives the canonical command-line
    form and parses back to an equal spec.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    recolor: float | None = None
    gray: float | None = None
    texture: float | None = None
    crop: float | None = None
    rotate: float | None = None
    translate: float | None = None
    pad: int | None = None
    flip: float | None = None
    blur: float | None = None
    cutout: int | None = None
    nearest: int | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _in_domain(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        assert info.field_name is not None
        return _RULES[info.field_name].check(info.field_name, value)

    @model_validator(mode="after")
    def _recolor_options_need_recolor(self) -> AugmentSpec:
        for name in ("gray", "texture"):
            value = getattr(self, name)
            if value is not None and self.recolor is None:
                raise ConfigError(
                    f"augment: {name}={_format_number(value)} only works with recolor; "
                    f"add recolor (e.g. 'recolor,{name}={_format_number(value)}') or drop {name}"
                )
        return self

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _RULES)

    def to_string(self) -> str:
        """Canonical form, e.g. ``'crop=0.8,rotate=20,translate=0.1'``; ``'none'`` when empty."""
        parts = [
            name if _RULES[name].flag else f"{name}={_format_number(value)}"
            for name in _RULES
            if (value := getattr(self, name)) is not None
        ]
        return ",".join(parts) or "none"

    def __str__(self) -> str:
        return self.to_string()


def _format_number(value: float) -> str:
    # repr round-trips floats exactly; whole values read better without '.0'.
    return str(int(value)) if float(value).is_integer() else repr(value)


def _unknown(op: str) -> ConfigError:
    return ConfigError(f"augment: unknown op {op!r}; valid: {_VALID}; or none")


def _parse_text(text: str) -> dict[str, object]:
    stripped = text.strip()
    if stripped in ("", "none"):
        return {}
    values: dict[str, object] = {}
    for item in stripped.split(","):
        op, has_value, value = (part.strip() for part in item.partition("="))
        if not op:
            raise ConfigError(f"augment: empty op in {text!r}; write ops separated by commas")
        if op == "none":
            raise ConfigError(f"augment: 'none' cannot be combined with other ops in {text!r}")
        rule = _RULES.get(op)
        if rule is None:
            raise _unknown(op)
        if op in values:
            raise ConfigError(f"augment: {op} given twice in {text!r}")
        if not has_value:
            if rule.bare is None:
                raise ConfigError(f"augment: {op} needs a value: {rule.usage} ({rule.meaning})")
            values[op] = rule.bare
        else:
            values[op] = value
    return values


def _parse_table(table: Mapping[object, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for op, value in table.items():
        rule = _RULES.get(op) if isinstance(op, str) else None
        if rule is None:
            raise _unknown(str(op))
        if isinstance(value, bool) and rule.bare is not None:
            # TOML's `flip = true` means the default strength; `false` means off.
            if value:
                values[op] = rule.bare
        elif value is not None:
            values[op] = value
    return values


def parse_augment(spec: str | Mapping[str, object] | AugmentSpec | None) -> AugmentSpec:
    """Parse ``'rotate=20,translate=0.1,crop=0.8'``, a TOML table or an existing spec.

    Grammar: comma-separated ops, each ``name`` or ``name=value``: ``flip[=p]``,
    ``translate=frac``, ``pad=px``, ``rotate=deg``, ``crop=min_scale``, ``cutout=px``,
    ``blur=sigma``, ``recolor[=p_invert]`` with its options ``gray=p`` and ``texture=amp``,
    ``nearest``; ``'none'`` or ``''`` for no augmentation. A table maps the same
    names to numbers (``true`` for a bare op, ``false`` for off). Raises ConfigError.
    """
    if spec is None:
        return AugmentSpec()
    if isinstance(spec, AugmentSpec):
        return spec
    if isinstance(spec, str):
        return AugmentSpec(**_parse_text(spec))
    if isinstance(spec, Mapping):
        return AugmentSpec(**_parse_table(spec))
    raise ConfigError(
        f"augment: expected a string like 'rotate=20,flip' or a table, got {type(spec).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# The pipeline


class Augment:
    """A spec's ops applied in a fixed order: recolor (with gray, texture), the fused geometric
    resample (crop, rotate, translate), pad-crop, flip, blur (with recolor: only the images
    it painted), cutout.

    The flip is folded into whichever resample runs anyway (the affine matrix, else the
    pad-crop gather); flipping commutes in distribution with the symmetric ops around it.
    Fusing also means rotation and translation read real pixels beyond a crop box where a
    chain of separate ops would read zeros. With an empty spec the input is returned as is.
    With ``recolor`` the output has 3 channels whatever the input's: the caller decides whether
    to expand gray data to 3 channels beforehand, and must build its model for 3.
    """

    def __init__(self, spec: AugmentSpec) -> None:
        self.spec = spec
        self.recolor = (
            None
            if spec.recolor is None
            else Recolor(spec.recolor, p_gray=spec.gray or 0.0, texture=spec.texture or 0.0)
        )
        geometric: list[_AffineOp] = []
        if spec.crop is not None:
            geometric.append(ResizedCrop(spec.crop))
        if spec.rotate is not None:
            geometric.append(Rotate(spec.rotate))
        if spec.translate is not None:
            geometric.append(Translate(spec.translate))
        self.geometric = tuple(geometric)
        self.pad_crop = None if spec.pad is None else PadCrop(spec.pad)
        self.flip = None if spec.flip is None else HorizontalFlip(spec.flip)
        self.blur = None if spec.blur is None else GaussianBlur(spec.blur)
        self.cutout = None if spec.cutout is None else Cutout(spec.cutout)

    def __call__(self, x: Tensor, generator: MaybeGenerator = None) -> Tensor:
        painted = None  # with recolor: which images were painted
        if self.recolor is not None:
            params = self.recolor.sample_params(x, generator)
            painted = Recolor.recolored(x, params)
            x = self.recolor.apply(x, params, painted)
        flip = None if self.flip is None else self.flip.sample_params(x, generator)
        if self.geometric:
            h, w = x.shape[-2:]
            matrices = [op.matrix(op.sample_params(x, generator), h, w) for op in self.geometric]
            if flip is not None:
                matrices.append(_flip_matrix(flip))
                flip = None
            # Output-to-input maps compose in application order: the first op leftmost.
            mode = "nearest" if self.spec.nearest else "bilinear"
            x = warp(x, functools.reduce(torch.matmul, matrices), mode)
        if self.pad_crop is not None:
            x = self.pad_crop.apply(x, self.pad_crop.sample_params(x, generator), flip=flip)
            flip = None
        if flip is not None:
            x = _flip_gather(x, flip)
        if self.blur is not None:
            blurred = self.blur(x, generator)
            # With recolor, blur belongs to the painted look: gray digits stay as sharp as
            # the gray test digits (blurring them cost LeNet-5 0.5 points on MNIST), and
            # colour images keep their own look.
            x = (
                blurred
                if painted is None
                else torch.where(painted[:, None, None, None], blurred, x)
            )
        if self.cutout is not None:
            x = self.cutout(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Augment({self.spec.to_string()!r})"


def build_augment(spec: AugmentSpec | str | Mapping[str, object] | None) -> Augment:
    """The callable ``augment(x, generator) -> x`` for a spec (or anything parse_augment takes)."""
    return Augment(parse_augment(spec))
