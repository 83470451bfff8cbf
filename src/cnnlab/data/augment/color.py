"""Colour ops for gray digits: recolouring with textured backgrounds, and Gaussian blur."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cnnlab.data.augment.geometry import MaybeGenerator, Tensor, _Op, _uniform


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
