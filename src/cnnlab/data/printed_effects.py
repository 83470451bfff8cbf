"""The rendering effects of printed digits, on whole chunks of images at once.

Every random number an effect needs is drawn up front by :func:`draw_effects` (numpy, one
generator), so the chunk size cannot change an image; the functions after it only apply
what was drawn. Ink is coverage in [0, 1] at the 2x render size; images are float RGB in
[0, 1] at the target size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cnnlab.data.augment import luminance, with_luminance
from cnnlab.data.printed_style import Style

_KERNEL = 7  # motion and defocus blur kernels, in target pixels


@dataclass(frozen=True)
class Effects:
    """Per-image parameters of the effects; 0 (or -1) where an image does not get one."""

    weight: np.ndarray  # (n,) int: dilation steps at the render size, negative = thinner
    tilt: np.ndarray  # (n, 2) perspective terms, per half render width
    outline: np.ndarray  # (n,) bool
    shadow: np.ndarray  # (n, 2) offset in render pixels, (0, 0) for none
    clutter: np.ndarray  # (n, 3, 5) up to 3 segments: x0, y0, x1, y1 in [0, 1], width px
    clutter_mix: np.ndarray  # (n,) how far the lines go from background to digit colour
    light: np.ndarray  # (n, 3): gain slope, its direction, vignetting strength
    low_res: np.ndarray  # (n,) the size drawn at, 0 for none
    motion: np.ndarray  # (n, 2): length in px, direction; length 0 for none
    defocus: np.ndarray  # (n,) disk radius in px, 0 for none
    jpeg: np.ndarray  # (n,) quality 20-70 in steps of 10, 0 for none
    # Training only (drawn by draw_training_effects; draw_effects leaves them at none):
    # a plate behind the digit (a disc, an ellipse or a rounded rectangle, as on house
    # numbers, road signs and badges): centre x, y and half-extents x, y in target pixels
    # from the image centre, and the superellipse exponent; half-extents 0 for none.
    plate: np.ndarray  # (n, 5)
    ring: np.ndarray  # (n,) a ring round the plate: its width, 0 for none
    plate_colours: np.ndarray  # (n, 2, 4) uniforms: colours round it, of the ring
    # embossed (pressed into the surface: no ink, a lit and a shadowed edge): the light's
    # offset in render pixels, (0, 0) for none, then how far the lit edge goes to white
    # and the shadowed one to black
    emboss: np.ndarray  # (n, 4)

    def take(self, part: slice) -> Effects:
        return Effects(*(getattr(self, f)[part] for f in Effects.__dataclass_fields__))

    @property
    def embossed(self) -> np.ndarray:
        """(n,) bool: the images drawn embossed."""
        return np.abs(self.emboss[:, :2]).sum(1) > 0


def draw_effects(n: int, rng: np.random.Generator, style: Style, size: int) -> Effects:
    def share(p: float) -> np.ndarray:
        return rng.random(n) < p

    heavier = rng.choice([1, 1, 2], n)
    weight = np.where(share(style.weight), np.where(share(style.lighter), -1, heavier), 0)
    tilt = np.where(share(style.perspective)[:, None], rng.uniform(-0.25, 0.25, (n, 2)), 0.0)
    offset = rng.uniform(1.5, 3.5, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    shadow = np.where(share(style.shadow)[:, None], offset, 0.0)
    lines = rng.integers(1, 4, n)
    segments = np.concatenate([rng.random((n, 3, 4)), rng.uniform(0.6, 1.4, (n, 3, 1))], 2)
    has_clutter = share(style.clutter)
    segments[~has_clutter] = 0
    segments[np.arange(3)[None, :] >= lines[:, None]] = 0  # width 0: no line
    light = np.stack(
        [rng.uniform(-0.4, 0.4, n), rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 0.6, n)], 1
    )
    light[~share(style.lighting)] = 0
    low_res = np.where(share(style.low_res), np.round(size / rng.uniform(1.6, 3.0, n)), 0)
    motion = np.stack([rng.uniform(2.0, 5.0, n), rng.uniform(0, np.pi, n)], 1)
    motion[~share(style.motion_blur)] = 0
    defocus = np.where(share(style.defocus), rng.uniform(0.8, 1.8, n), 0.0)
    jpeg = np.where(share(style.jpeg), 10 * rng.integers(2, 8, n), 0)  # 20, 30, ... 70
    outlined = share(style.outline)
    return Effects(
        weight=np.where(outlined, 2, weight).astype(np.int64),  # room for a hollow stroke
        tilt=tilt,
        outline=outlined,
        shadow=shadow,
        clutter=segments,
        clutter_mix=rng.uniform(0.2, 0.5, n),
        light=light,
        low_res=low_res.astype(np.int64),
        motion=motion,
        defocus=defocus,
        jpeg=jpeg.astype(np.int64),
        plate=np.zeros((n, 5)),
        ring=np.zeros(n),
        plate_colours=np.zeros((n, 2, 4)),
        emboss=np.zeros((n, 4)),
    )


def draw_training_effects(
    effects: Effects, rng: np.random.Generator, style: Style, size: int, digit: np.ndarray
) -> Effects:
    """The plates and the embossing, from their own stream ``rng``. ``digit`` (n, 5): where
    each digit is (centre x, y, and how far it reaches from it across and up, in target
    pixels) and whether it sits on a plate (1) or not (0). An embossed digit has no other
    effect on its stroke (outline, shadow) and at most one that takes legibility away."""
    n = len(digit)
    plates = _draw_plates(rng, digit, size)
    light = rng.uniform(0, 2 * np.pi, n)
    step = rng.choice([1.0, 2.0, 2.0, 3.0], n)
    offset = np.stack([np.cos(light), np.sin(light)], 1) * step[:, None]
    legibility = [effects.outline, effects.clutter[:, :, 4].any(1), effects.low_res > 0,
                  effects.jpeg > 0, effects.motion[:, 0] > 0, effects.defocus > 0]  # fmt: skip
    plain = ~effects.outline & ~effects.shadow.any(1) & (np.sum(legibility, 0) <= 1)
    embossed = (rng.random(n) < style.emboss) & plain
    emboss = np.concatenate([offset, rng.uniform(0.4, 0.85, (n, 2))], 1)
    emboss[~embossed] = 0
    return replace(effects, **plates, emboss=emboss)


def _draw_plates(rng: np.random.Generator, digit: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Plates large enough to hold the digit with room round it: a circle (half the
    plates), an ellipse or a rounded rectangle, at most a little wider than the image."""
    n = len(digit)
    centre, half, on = digit[:, :2], digit[:, 2:4], digit[:, 4] > 0
    shape = rng.random(n)
    circle, ellipse = shape < 0.5, (shape >= 0.5) & (shape < 0.65)
    round_to = np.hypot(half[:, 0], half[:, 1])[:, None] * rng.uniform(1.05, 1.3, (n, 1))
    boxed = half * rng.uniform(1.2, 1.6, (n, 2))
    extent = np.where(circle[:, None], round_to, np.where(ellipse[:, None], boxed * 1.3, boxed))
    extent = np.minimum(extent, 0.62 * size)  # some of the edge stays in the picture
    exponent = np.where(circle | ellipse, 2.0, rng.uniform(3.0, 6.0, n))
    plate = np.concatenate([centre + rng.normal(0, 0.5, (n, 2)), extent, exponent[:, None]], 1)
    plate[~on, :4] = 0
    ring = np.where(on & (rng.random(n) < 0.4), rng.uniform(0.04, 0.09, n) * size, 0.0)
    return {"plate": plate, "ring": ring, "plate_colours": rng.random((n, 2, 4))}


def cap_degradations(
    effects: Effects,
    noise: np.ndarray,
    blur: np.ndarray,
    low_contrast: np.ndarray,
    rng: np.random.Generator,
    most: int,
) -> tuple[Effects, np.ndarray, np.ndarray, np.ndarray]:
    """Keep at most ``most`` of the effects that take legibility away (noise, blurs, low
    contrast, outline, clutter, low resolution, JPEG) per image, chosen at random among
    those it drew: each alone is fair, but four at once leave a digit nobody can read,
    and a test image nobody can read measures nothing."""
    flags = np.stack(
        [noise > 0, blur > 0, low_contrast, effects.outline, effects.clutter[:, :, 4].any(1),
         effects.low_res > 0, effects.jpeg > 0, effects.motion[:, 0] > 0, effects.defocus > 0],
        1,
    )  # fmt: skip
    score = np.where(flags, rng.random(flags.shape), -1.0)
    keep = flags & ((-score).argsort(1).argsort(1) < most)
    clutter = effects.clutter.copy()
    clutter[~keep[:, 4]] = 0
    motion = effects.motion.copy()
    motion[~keep[:, 7]] = 0
    capped = replace(
        effects,
        outline=keep[:, 3],
        weight=np.where(effects.outline & ~keep[:, 3], 0, effects.weight),
        clutter=clutter,
        low_res=np.where(keep[:, 5], effects.low_res, 0),
        jpeg=np.where(keep[:, 6], effects.jpeg, 0),
        motion=motion,
        defocus=np.where(keep[:, 8], effects.defocus, 0.0),
    )
    return capped, np.where(keep[:, 0], noise, 0.0), np.where(keep[:, 1], blur, 0.0), keep[:, 2]


# --- ink, at the render size ------------------------------------------------------------


def _dilate(ink: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(ink, 3, stride=1, padding=1)


def _erode(ink: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-ink, 3, stride=1, padding=1)


def change_weight(ink: torch.Tensor, steps: np.ndarray) -> torch.Tensor:
    """Heavier (dilated) or lighter (eroded) strokes; a stroke never erodes away."""
    out = ink.clone()
    for k in np.unique(steps[steps != 0]):
        index = torch.from_numpy(np.flatnonzero(steps == k))
        part = ink[index]
        for _ in range(abs(int(k))):
            part = _dilate(part) if k > 0 else _erode(part)
        if k < 0:  # keep the original where erosion took more than half the ink
            kept = part.flatten(1).sum(1) >= 0.5 * ink[index].flatten(1).sum(1)
            part = torch.where(kept[:, None, None, None], part, ink[index])
        out[index] = part
    return out


def outline(ink: torch.Tensor, which: np.ndarray) -> torch.Tensor:
    """Hollow digits: only a band along the edge of the stroke keeps its ink."""
    if not which.any():
        return ink
    index = torch.from_numpy(np.flatnonzero(which))
    part = _dilate(ink[index])
    out = ink.clone()
    out[index] = (part - _erode(_erode(part))).clamp_(0, 1)
    return out


def shifted(ink: torch.Tensor, offset: np.ndarray) -> torch.Tensor:
    """The ink moved by whole render pixels (rounded), zero where it moved in from outside."""
    out = torch.zeros_like(ink)
    size = ink.shape[-1]
    for i in np.flatnonzero(np.abs(offset).sum(1) > 0):
        dx, dy = (round(float(v)) for v in offset[i])
        src = ink[i, :, max(0, -dy) : size - max(0, dy), max(0, -dx) : size - max(0, dx)]
        out[
            i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]
        ] = src
    return out


def emboss_edges(ink: torch.Tensor, effects: Effects) -> tuple[torch.Tensor, torch.Tensor]:
    """(lit, shadowed) edge coverage at the render size: where the stroke's edge faces
    the light and where it faces away; zero for images not embossed."""
    lit, shade = torch.zeros_like(ink), torch.zeros_like(ink)
    which = np.flatnonzero(effects.embossed)
    if len(which):
        index = torch.from_numpy(which)
        part, offset = ink[index], effects.emboss[which, :2]
        lit[index] = (part - shifted(part, offset)).clamp(0, 1)
        shade[index] = (part - shifted(part, -offset)).clamp(0, 1)
    return lit, shade


# --- images, at the target size ------------------------------------------------------------


def plate_cover(
    plate: np.ndarray, ring: np.ndarray, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, size, size) antialiased coverage of each plate and of its border ring; an
    image without a plate is all plate (its background), with no ring."""
    p = torch.from_numpy(plate).float()
    cx, cy, rx, ry, exponent = (p[:, k, None, None] for k in range(5))
    centred = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    # (No plate has half-extents 0: 1 keeps the powers finite, and the where() drops it.)
    x = (centred[None, None, :] - cx) / rx.clamp(min=1)
    y = (centred[None, :, None] - cy) / ry.clamp(min=1)
    radius = (x.abs() ** exponent + y.abs() ** exponent) ** (1 / exponent)
    scale = torch.minimum(rx, ry).clamp(min=1)  # pixels per unit of radius, near enough at the edge
    cover = torch.where(rx > 0, ((1 - radius) * scale + 0.5).clamp(0, 1), 1.0)
    width = torch.from_numpy(ring).float()[:, None, None]
    inner = ((1 - radius) * scale - width + 0.5).clamp(0, 1)
    return cover[:, None], ((cover - inner) * (width > 0)).clamp(0, 1)[:, None]


def colour_away(rgb: torch.Tensor, u: np.ndarray, apart: float = 0.2) -> torch.Tensor:
    """(B, 3) colours at least ``apart`` in luma from ``rgb``, uniform over the lumas that
    allows, of a random hue; ``u`` (B, 4) uniforms: a hue, then where in that range."""
    lum = luminance(rgb)
    below = (lum - apart).clamp(min=0)
    above = (1 - lum - apart).clamp(min=0)
    at = torch.from_numpy(u[:, 3]).float() * (below + above)
    target = torch.where(at < below, at, lum + apart + (at - below))
    return with_luminance(torch.from_numpy(u[:, :3]).float(), target.clamp(0, 1))


def clutter_ink(segments: np.ndarray, size: int) -> torch.Tensor:
    """(B, 1, size, size) coverage of up to three thin line segments per image."""
    out = torch.zeros(len(segments), 1, size, size)
    which = np.flatnonzero(segments[:, :, 4].any(1))
    if len(which):
        out[torch.from_numpy(which)] = _segments(segments[which], size)
    return out


def _segments(segments: np.ndarray, size: int) -> torch.Tensor:
    seg = torch.from_numpy(segments).float()  # (B, 3, 5)
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    px = centres[None, None, None, :]
    py = centres[None, None, :, None]
    x0, y0, x1, y1, width = (seg[..., k, None, None] for k in range(5))
    dx, dy = x1 - x0, y1 - y0
    t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy).clamp(min=1e-6)).clamp(0, 1)
    distance = torch.hypot(px - x0 - t * dx, py - y0 - t * dy) * size  # in pixels
    cover = (width / 2 + 0.5 - distance).clamp(0, 1) * (width > 0)
    return cover.amax(1, keepdim=True)


def light(image: torch.Tensor, params: np.ndarray) -> torch.Tensor:
    """Multiply by a linear light ramp and a vignette (darker corners)."""
    if not params.any():
        return image
    size = image.shape[-1]
    c = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / size
    p = torch.from_numpy(params).float()
    slope, angle, vignette = (p[:, k, None, None] for k in range(3))
    along = angle.cos() * c[None, None, :] + angle.sin() * c[None, :, None]
    radius2 = c[None, None, :] ** 2 + c[None, :, None] ** 2  # 0.5 in the corners
    gain = (1 + slope * along) * (1 - vignette * radius2)
    return image * gain[:, None]


def _kernels(motion: np.ndarray, defocus: np.ndarray) -> torch.Tensor:
    """(B, K, K) normalised kernels: a line (motion), a disk (defocus), or both."""
    k = _KERNEL
    taps = torch.arange(k, dtype=torch.float32) - k // 2
    x, y = taps[None, None, :], taps[None, :, None]
    length, angle = (torch.from_numpy(motion[:, i]).float()[:, None, None] for i in range(2))
    across = (-angle.sin() * x + angle.cos() * y).abs()
    along = (angle.cos() * x + angle.sin() * y).abs()
    line = (1 - across).clamp(0, 1) * (length / 2 + 0.5 - along).clamp(0, 1)
    radius = torch.from_numpy(defocus).float()[:, None, None]
    disk = (radius + 0.5 - torch.hypot(x, y)).clamp(0, 1)
    point = ((x == 0) & (y == 0)).float()
    line = torch.where(length > 0, line, point)
    disk = torch.where(radius > 0, disk, point)
    both = F.conv2d(line[None], disk.flip(-1, -2)[:, None], padding=k // 2, groups=len(line))[0]
    return both / both.sum((1, 2), keepdim=True)


def kernel_blur(image: torch.Tensor, motion: np.ndarray, defocus: np.ndarray) -> torch.Tensor:
    which = np.flatnonzero((motion[:, 0] > 0) | (defocus > 0))
    if len(which) == 0:
        return image
    index = torch.from_numpy(which)
    part = image[index]
    b, c, h, w = part.shape
    kernels = _kernels(motion[which], defocus[which]).repeat_interleave(c, 0)[:, None]
    padded = F.pad(part.reshape(1, b * c, h, w), (_KERNEL // 2,) * 4, mode="replicate")
    out = image.clone()
    out[index] = F.conv2d(padded, kernels, groups=b * c).view(b, c, h, w)
    return out


def low_resolution(image: torch.Tensor, sizes: np.ndarray) -> torch.Tensor:
    """Down to ``sizes[i]`` pixels (area), back up bilinearly: a small, upscaled picture."""
    out = image
    for small in np.unique(sizes[sizes > 0]):
        index = torch.from_numpy(np.flatnonzero(sizes == small))
        part = F.interpolate(image[index], size=int(small), mode="area")
        part = F.interpolate(part, size=image.shape[-1], mode="bilinear", align_corners=False)
        out = out.clone() if out is image else out
        out[index] = part
    return out


def jpeg(images: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """uint8 (B, 3, H, W): each image with quality > 0 through a JPEG encode and decode."""
    for i in np.flatnonzero(quality > 0):
        buffer = io.BytesIO()
        Image.fromarray(images[i].transpose(1, 2, 0)).save(buffer, "JPEG", quality=int(quality[i]))
        images[i] = np.asarray(Image.open(buffer)).transpose(2, 0, 1)
    return images
