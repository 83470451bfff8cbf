"""Printed digits 0-9, rendered from the fonts on this machine, in random colours and styles.

The fonts and their sides (seen, unseen lining, unseen old-style, handwriting) come from
:mod:`cnnlab.data.font_pool`; each split draws from one side.

Every image picks a glyph and a random size, aspect, shear, rotation, tilt and position,
which one resample applies at 2x the target resolution; averaging 2x2 blocks down to the
target size is the antialiasing. Colours come in pairs at least ``MIN_CONTRAST`` apart in
BT.601 luma (``LOW_CONTRAST`` for some), drawn as :class:`~cnnlab.data.augment.Recolor`
draws them; :mod:`cnnlab.data.printed_style` says which share of images gets each of the
other effects (gradients, noise, blur, neighbours, outlines, shadows, lighting, low
resolution, JPEG, clutter, plates). Generated splits are cached as .npy in the content-keyed
cache (:mod:`cnnlab.data.cache`, ``$CNNLAB_CACHE``), keyed by the font pool too.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
import torch
import torch.nn.functional as F

from cnnlab import heartbeat
from cnnlab.data import printed_effects as fx
from cnnlab.data.arrays import Split
from cnnlab.data.augment import GaussianBlur, contrasting_colors, luminance, with_luminance
from cnnlab.data.cache import entry_folder, load_split, save_split
from cnnlab.data.font_pool import load_pool, pool_faces
from cnnlab.data.fonts import FontFile, pool_key
from cnnlab.data.glyphs import Atlas
from cnnlab.data.printed_style import FULL, LOW_CONTRAST, MIN_CONTRAST, Style
from cnnlab.errors import ConfigError

# Bump when the rendering changes, so caches written by older code are not reused.
GENERATOR_VERSION = 5
# The random streams' seed: kept at version 4's, whose test draws v5 reproduces byte for
# byte (v5 added training-only effects, drawn from a stream of their own).
DRAW_STREAM = 4

SIZES = (28, 32)
DEFAULT_TRAIN = 40_000  # 40 digits per seen font: the pool is large
DEFAULT_TEST = 5_000
# Each split is its own draw (disjoint images); the test splits are always drawn in the
# full style less its training-only effects, so they do not change with a training option.
SPLITS = {
    "train": (0, "seen"),
    "test": (1, "seen"),
    "unseen": (2, "unseen"),
    "oldstyle": (3, "oldstyle"),
    "handwriting": (4, "handwriting"),
}

_SUPERSAMPLE = 2
_CHUNK = 1024
_PROGRESS_FROM = 2000  # fewer images render too fast to need a progress bar

_log = logging.getLogger(__name__)


# --- drawing the per-image parameters -----------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """Everything random about n images, drawn up front so chunking cannot change it."""

    labels: np.ndarray  # (n,) int64
    glyph: np.ndarray  # (n,) atlas index
    inverse: np.ndarray  # (n, 3, 3) render pixel -> atlas pixel, centred, projective
    neighbour: np.ndarray  # (n,) atlas index of a cut-off neighbouring digit, -1 for none
    neighbour_shift: np.ndarray  # (n,) its offset in atlas pixels along the glyph's x axis
    fg: np.ndarray  # (n, 3) digit colour
    bg: np.ndarray  # (n, 3) background colour
    bg2: np.ndarray  # (n, 3) gradient end colour (same luma as bg); equal to bg for none
    angle: np.ndarray  # (n,) gradient direction
    noise: np.ndarray  # (n,) noise std (0 for none)
    blur: np.ndarray  # (n,) blur sigma in target pixels (0 for none)
    effects: fx.Effects

    def take(self, part: slice) -> _Draws:
        fields = [f for f in _Draws.__dataclass_fields__ if f != "effects"]
        return _Draws(*(getattr(self, f)[part] for f in fields), self.effects.take(part))


def _draw_params(
    n: int, rngs: tuple[np.random.Generator, np.random.Generator], size: int, atlas: Atlas,
    style: Style,
) -> _Draws:  # fmt: skip
    """``rngs``: the main stream, then the one the training-only effects (plates, emboss)
    draw from, so that the test draws, which have none, stay the images they were."""
    rng, extra = rngs
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)  # balanced classes
    # Each digit from the fonts whose glyph for it reads as that digit.
    pick = rng.random(n)
    font = np.empty(n, np.int64)
    for digit in range(10):
        fonts = atlas.readable_fonts(digit)
        fonts = fonts if len(fonts) else np.arange(len(atlas.fonts))  # a tiny pool
        which = labels == digit
        font[which] = fonts[(pick[which] * len(fonts)).astype(np.int64)]
    glyph = font * 10 + labels

    # A neighbouring digit of the same font, cut off by the border, as in house numbers. Its
    # digit is large and centred across, so the neighbour never fits whole and the label
    # stays the digit in the middle.
    has_neighbour = rng.random(n) < style.neighbour
    # A plate holds one digit, smaller so that the plate's edge shows round it.
    has_plate = ~has_neighbour & (extra.random(n) < style.plate)

    # Geometry, in target pixels: digit height, x stretch, shear, rotation, jitter.
    height = size * np.where(has_neighbour, rng.uniform(0.7, 0.85, n), rng.uniform(0.5, 0.85, n))
    height = np.where(has_plate, size * extra.uniform(0.4, 0.65, n), height)
    scale_y = height * _SUPERSAMPLE / atlas.heights[glyph]
    scale_x = scale_y * np.exp(rng.uniform(-style.stretch, style.stretch, n))
    shear = rng.uniform(-style.shear, style.shear, n)
    angle = np.deg2rad(rng.uniform(-style.rotate, style.rotate, n))
    width = atlas.widths[glyph] * scale_x / _SUPERSAMPLE
    room_x = np.maximum(0.0, (size - width) / 2 - 1)
    room_y = np.maximum(0.0, (size - height) / 2 - 1)
    room_x *= np.where(has_neighbour, 0.15, 0.9)
    shift = rng.uniform(-1, 1, (n, 2)) * np.stack([room_x, 0.9 * room_y], 1) * _SUPERSAMPLE
    # How far the slanted, turned digit reaches from its centre, for a plate round it.
    turn = np.abs(np.sin(angle))
    reach = np.stack([width + (np.abs(shear) + turn) * height, height + turn * width], 1) / 2
    digit = np.concatenate([shift / _SUPERSAMPLE, reach, has_plate[:, None]], 1)
    effects = fx.draw_effects(n, rng, style, size)
    tilt = effects.tilt / (size * _SUPERSAMPLE / 2)
    inverse = _inverse_maps(scale_x, scale_y, shear, angle, shift, tilt, atlas.drops[glyph])

    other = font * 10 + rng.integers(0, 10, n)
    gap = rng.uniform(0.08, 0.25, n) * atlas.heights[glyph]
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    neighbour_shift = side * ((atlas.widths[glyph] + atlas.widths[other]) / 2 + gap)
    neighbour = np.where(has_neighbour, other, -1)

    noise = np.where(rng.random(n) < style.noise, rng.uniform(0.01, 0.08, n), 0.0)
    blur = np.where(rng.random(n) < style.blur, rng.uniform(0.3, 1.0, n), 0.0)
    effects, noise, blur, low_contrast = fx.cap_degradations(
        effects, noise, blur, rng.random(n) < style.low_contrast, rng, style.at_most
    )
    effects = fx.draw_training_effects(effects, extra, style, size, digit)

    # Colours: a contrasting pair, the digit light or dark with equal odds.
    u = torch.from_numpy(rng.random((n, 8)))
    low = torch.from_numpy(low_contrast)[:, None]
    pairs = zip(
        contrasting_colors(u, LOW_CONTRAST), contrasting_colors(u, MIN_CONTRAST), strict=True
    )
    light, dark = (torch.where(low, a, b).numpy().astype(np.float64) for a, b in pairs)
    invert = rng.random(n) < 0.5
    fg = np.where(invert[:, None], dark, light)
    bg = np.where(invert[:, None], light, dark)
    # A gradient to another hue of the same luma keeps the contrast with the digit.
    second = with_luminance(
        torch.from_numpy(rng.random((n, 3))), luminance(torch.from_numpy(bg))
    ).numpy()
    bg2 = np.where((rng.random(n) < style.gradient)[:, None], second, bg)
    gradient_angle = rng.uniform(0, 2 * np.pi, n)
    return _Draws(
        labels, glyph, inverse, neighbour, neighbour_shift, fg, bg, bg2, gradient_angle, noise,
        blur, effects,
    )  # fmt: skip


def _inverse_maps(
    scale_x: np.ndarray,
    scale_y: np.ndarray,
    shear: np.ndarray,
    angle: np.ndarray,
    shift: np.ndarray,
    tilt: np.ndarray,
    drop: np.ndarray,
) -> np.ndarray:
    """(n, 3, 3) maps from render pixels to atlas pixels: undo the tilt (a homography), the
    shift, rotation, shear and scale, then find the glyph at its place on the line (an
    old-style 7 hangs below the centre of the figures' band, its 0 sits low and small)."""
    n = len(angle)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    untilt, untranslate, unrotate, unshear, unscale, place = (eye.copy() for _ in range(6))
    place[:, 1, 2] = -drop
    untilt[:, 2, :2] = tilt
    untranslate[:, :2, 2] = -shift
    cos, sin = np.cos(angle), np.sin(angle)
    unrotate[:, 0, 0], unrotate[:, 0, 1], unrotate[:, 1, 0], unrotate[:, 1, 1] = cos, sin, -sin, cos
    unshear[:, 0, 1] = -shear
    unscale[:, 0, 0], unscale[:, 1, 1] = 1 / scale_x, 1 / scale_y
    return place @ unscale @ unshear @ unrotate @ untranslate @ untilt


# --- rendering ------------------------------------------------------------------------------


def _ink(atlas: Atlas, glyph: np.ndarray, inverse: np.ndarray, render: int) -> torch.Tensor:
    """(B, 1, render, render) ink coverage in [0, 1], sampled bilinearly from the atlas."""
    cell = atlas.cell
    m = torch.from_numpy(inverse).float()[:, :, :, None, None]  # (B, 3, 3, 1, 1)
    centred = torch.arange(render, dtype=torch.float32) - (render - 1) / 2
    x, y = centred[None, None, :], centred[None, :, None]
    w = m[:, 2, 0] * x + m[:, 2, 1] * y + m[:, 2, 2]
    # grid_sample's [-1, 1] spans the cell's pixel edges (align_corners=False).
    grid = torch.stack(
        [(m[:, k, 0] * x + m[:, k, 1] * y + m[:, k, 2]) / w * (2 / cell) for k in range(2)], -1
    )
    masks = atlas.masks[torch.from_numpy(glyph)].float().div_(255)
    return F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _render_chunk(atlas: Atlas, draws: _Draws, rng: np.random.Generator, size: int) -> np.ndarray:
    render = size * _SUPERSAMPLE
    fxd = draws.effects
    ink = _ink(atlas, draws.glyph, draws.inverse, render)
    with_neighbour = np.flatnonzero(draws.neighbour >= 0)
    if len(with_neighbour):
        move = np.broadcast_to(np.eye(3), (len(with_neighbour), 3, 3)).copy()
        move[:, 0, 2] = -draws.neighbour_shift[with_neighbour]
        # The neighbour sits on the same line: its own place on it, not the digit's.
        own, other = draws.glyph[with_neighbour], draws.neighbour[with_neighbour]
        move[:, 1, 2] = atlas.drops[own] - atlas.drops[other]
        inverse = move @ draws.inverse[with_neighbour]
        extra = _ink(atlas, draws.neighbour[with_neighbour], inverse, render)
        index = torch.from_numpy(with_neighbour)
        ink[index] = torch.maximum(ink[index], extra)
    ink = fx.outline(fx.change_weight(ink, fxd.weight), fxd.outline)
    shadow = F.avg_pool2d(fx.shifted(ink, fxd.shadow), _SUPERSAMPLE)
    lit, shade = (F.avg_pool2d(e, _SUPERSAMPLE) for e in fx.emboss_edges(ink, fxd))
    ink = F.avg_pool2d(ink, _SUPERSAMPLE)
    # An embossed digit is the surface's own colour, a little darker, between its edges.
    is_embossed = torch.from_numpy(fxd.embossed)[:, None, None, None]
    ink = torch.where(is_embossed, ink * 0.25, ink)

    centred = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / size
    angle = torch.from_numpy(draws.angle).float()
    along = (
        angle.cos()[:, None, None] * centred[None, None, :]
        + angle.sin()[:, None, None] * centred[None, :, None]
    )  # (B, H, W), within about [-0.7, 0.7]
    t = (along + 0.5).clamp_(0, 1)[:, None]
    bg = torch.from_numpy(draws.bg).float()[:, :, None, None]
    bg2 = torch.from_numpy(draws.bg2).float()[:, :, None, None]
    fg = torch.from_numpy(draws.fg).float()[:, :, None, None]
    image = bg + (bg2 - bg) * t
    # The plate is the background the digit was coloured against; round it, another colour
    # (an image without a plate is all plate).
    plate, ring = fx.plate_cover(fxd.plate, fxd.ring, size)
    around, ring_colour = (
        fx.colour_away(bg[:, :, 0, 0], fxd.plate_colours[:, k])[:, :, None, None] for k in range(2)
    )
    image = around + (image - around) * plate
    image = image + (ring_colour - image) * ring
    # Clutter lines and the shadow sit between background and digit colour, so the digit
    # keeps the strongest contrast.
    mix = torch.from_numpy(fxd.clutter_mix).float()[:, None, None, None]
    image = image + (bg + (fg - bg) * mix - image) * fx.clutter_ink(fxd.clutter, size)
    image = image + (bg + (fg - bg) * 0.45 - image) * shadow
    face = torch.where(is_embossed, bg * 0.8, fg)
    image = image + (face - image) * ink
    towards = torch.from_numpy(fxd.emboss[:, 2:]).float()[:, :, None, None, None]
    image = image + (1 - image) * towards[:, 0] * lit - image * towards[:, 1] * shade
    image = fx.light(image, fxd.light)
    image = GaussianBlur(1.0).apply(image.clamp_(0, 1), torch.from_numpy(draws.blur).float())
    image = fx.kernel_blur(image, fxd.motion, fxd.defocus)
    image = fx.low_resolution(image, fxd.low_res)
    noisy = np.flatnonzero(draws.noise > 0)
    if len(noisy):
        grain = rng.standard_normal((len(noisy), 3, size, size), dtype=np.float32)
        grain *= draws.noise[noisy, None, None, None].astype(np.float32)
        image[torch.from_numpy(noisy)] += torch.from_numpy(grain)
    pixels = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8).numpy()
    return fx.jpeg(pixels, fxd.jpeg)


def render_printed_digits(
    n: int, seed: int, size: int = 32, *, atlas: Atlas | None = None, style: Style = FULL
) -> Split:
    """``n`` printed digits, uint8 (n, 3, size, size), labels 0-9 balanced; same seed, same
    bytes. ``atlas`` defaults to this machine's seen fonts."""
    _check(n, size)
    atlas = load_pool().side("seen") if atlas is None else atlas
    rng, extra = streams(seed)
    draws = _draw_params(n, (rng, extra), size, atlas, style)
    images = np.empty((n, 3, size, size), np.uint8)
    starts = heartbeat.counted(
        range(0, n, _CHUNK),
        math.ceil(n / _CHUNK),
        f"printed digits: rendering {n} (cached afterwards)",
        math.ceil(_PROGRESS_FROM / _CHUNK),
    )
    # Rendering is deterministic per pixel, so the thread count cannot change the bytes.
    for start in starts:
        part = slice(start, start + _CHUNK)
        images[part] = _render_chunk(atlas, draws.take(part), rng, size)
    return Split(images, draws.labels)


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The main random stream of a draw, and its training-only effects' own."""
    return np.random.default_rng([DRAW_STREAM, seed]), np.random.default_rng([DRAW_STREAM, seed, 1])


def _check(n: int, size: int) -> None:
    if size not in SIZES:
        raise ConfigError(f"printed digits: size {size} is not supported; use 28 or 32")
    if n < 0:
        raise ConfigError(f"printed digits: count {n} is negative; use 0 or more images")


# --- cache ---------------------------------------------------------------------------------


def load_printed_digits(
    split: str,
    n: int,
    size: int = 32,
    cache_dir: Path | None = None,
    style: Style = FULL,
    faces: list[FontFile] | None = None,
) -> Split:
    """The ``split`` (a key of SPLITS) draw of ``n`` printed digits, cached after the first;
    no images when the split's side of the pool is empty (no old-style or handwriting
    fonts installed). Only "train" takes ``style``: the test draws are always in the full
    style, less the effects only training has."""
    if split not in SPLITS:
        raise ConfigError(
            f"printed digits: unknown split {split!r}; use one of {', '.join(SPLITS)}"
        )
    _check(n, size)
    seed, side = SPLITS[split]
    style = style if split == "train" else FULL.for_test()
    faces = pool_faces() if faces is None else faces
    folder = cache_folder(seed, n, size, side, style, faces, cache_dir)
    cached = load_split(folder, "printed digits")
    if cached is not None:
        return cached
    started = time.perf_counter()
    atlas = load_pool(faces).side(side)
    n = n if atlas.fonts else 0
    data = render_printed_digits(n, seed, size, atlas=atlas, style=style)
    _log.info("printed digits: rendered %d in %.1f s", n, time.perf_counter() - started)
    save_split(folder, data, "printed digits")
    return data


def cache_folder(
    seed: int,
    n: int,
    size: int,
    side: str,
    style: Style,
    faces: list[FontFile],
    cache_dir: Path | None = None,
) -> Path:
    """Where a draw is cached: keyed by all that shapes the images, the font files too
    (the fonts that pass the render check depend only on them, and a cache hit should
    not pay for checking them)."""
    key = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "size": size,
        "fonts": side,
        "style": style.key(),
        "pool": pool_key(faces),
        # Resampling, blurs and JPEG come from these: another version may round otherwise.
        "torch": torch.__version__,
        "pillow": PIL.__version__,
    }
    return entry_folder("printed", key, cache_dir)
