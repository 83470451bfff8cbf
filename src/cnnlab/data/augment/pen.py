"""Ops that make one hand's digits look like other hands': slant, pen width, the wobble of
a hand (elastic deformation), and low resolution scaled up.

MNIST holds 250 writers' digits, all written with similar pens and scanned alike; a model
trained on them alone reads other people's handwriting worse. Stroke width acts on gray
images only (the ink is the bright value there; coloured images have their own weight
variation); the others act on every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.data.augment.color import is_gray
from cnnlab.data.augment.geometry import (
    MaybeGenerator,
    Tensor,
    _AffineOp,
    _matrices,
    _Op,
    _uniform,
)


@dataclass(frozen=True)
class Slant(_AffineOp):
    """Shear x by a factor uniform in [-amount, amount] (0.3 leans a stroke by about 17
    degrees), about the centre. Params: (B,) shear factors."""

    amount: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        return _uniform(x, generator, x.shape[0]) * self.amount

    def matrix(self, params: Tensor, height: int, width: int) -> Tensor:
        one, zero = torch.ones_like(params), torch.zeros_like(params)
        return _matrices(one, -params, zero, zero, one, zero)


@dataclass(frozen=True)
class Stroke(_Op[Tensor]):
    """With probability ``p`` a gray image gets another pen: thicker (a thick marker: the
    bright strokes grown by a 3x3 maximum, blended in at a strength uniform in [0.4, 1])
    or thinner (a fine pen: shrunk by a 3x3 minimum, at 0.7 times that), equal odds.

    Params: (B,) float in [-1, 1]: > 0 thicker, < 0 thinner, 0 untouched."""

    p: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        draw = torch.rand(x.shape[0], 3, device=x.device, generator=generator)
        strength = 0.4 + 0.6 * draw[:, 2]
        # A full 3x3 minimum erases MNIST's thinnest strokes: a fine pen thins less.
        sign = torch.where(draw[:, 1] < 0.5, -0.7, 1.0)
        chosen = (draw[:, 0] < self.p) & is_gray(x)
        return torch.where(chosen, sign * strength, torch.zeros_like(strength))

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        thick = F.max_pool2d(x, 3, stride=1, padding=1)
        thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
        amount = params.abs()[:, None, None, None].to(x.dtype)
        target = torch.where(params[:, None, None, None] > 0, thick, thin)
        return x + (target - x) * amount


@dataclass(frozen=True)
class Elastic(_Op[Tensor]):
    """Elastic deformation (Simard et al. 2003, the MNIST record of its day): each pixel
    moves by a smooth random field, noise uniform in [-1, 1] blurred by a Gaussian of
    ``SIGMA`` pixels and scaled so the largest moves are about ``alpha`` pixels.

    Params: (B, 2, H, W) displacements in pixels (dx, dy)."""

    alpha: float
    SIGMA = 3.0

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        b, _, h, w = x.shape
        noise = torch.rand(b, 2, h, w, device=x.device, generator=generator) * 2 - 1
        radius = int(3 * self.SIGMA)
        taps = torch.arange(-radius, radius + 1, device=x.device, dtype=noise.dtype)
        kernel = torch.exp(-(taps**2) / (2 * self.SIGMA**2))
        kernel = kernel / kernel.sum()
        smooth = F.conv2d(
            noise.reshape(b * 2, 1, h, w), kernel.view(1, 1, 1, -1), padding=(0, radius)
        )
        smooth = F.conv2d(smooth, kernel.view(1, 1, -1, 1), padding=(radius, 0))
        # Blurred uniform noise has a std of about 0.58 / (2 sqrt(pi) sigma); scale its
        # typical move to alpha / 3 so that about the largest moves reach alpha.
        scale = (self.alpha / 3) / (0.58 / (2 * torch.pi**0.5 * self.SIGMA))
        return smooth.reshape(b, 2, h, w) * scale

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2) as (x, y)
        move = params.permute(0, 2, 3, 1).to(x.dtype)
        move = move * torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=x.device)
        grid = base[None] + move
        # Edge pixels repeat: a coloured background stays whole where the image moves in.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


@dataclass(frozen=True)
class LowResolution(_Op[Tensor]):
    """With probability ``p`` an image is shrunk to a scale uniform in [0.35, 0.7] and
    scaled back up (bilinear): a photo of a small figure, or a low-resolution scan.

    Params: (B,) scale, 1 = untouched."""

    p: float

    def sample_params(self, x: Tensor, generator: MaybeGenerator) -> Tensor:
        draw = torch.rand(x.shape[0], 2, device=x.device, generator=generator)
        scale = 0.35 + 0.35 * draw[:, 1]
        return torch.where(draw[:, 0] < self.p, scale, torch.ones_like(scale))

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        out = x.clone()
        h, w = x.shape[-2:]
        # A few distinct sizes per batch: group the images by their rounded small size.
        small = (params * h).round().clamp(min=4).to(torch.long)
        for side in torch.unique(small[params < 1]).tolist():
            index = torch.nonzero((small == side) & (params < 1)).flatten()
            size = (side, max(4, round(side * w / h)))
            down = F.interpolate(x[index], size=size, mode="area")
            up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
            out[index] = up.clamp(0, 1)
        return out
