"""Printed digits 0-9 rendered from the TrueType fonts matplotlib ships, in random colours.

Each font's digits are rendered once by Pillow (FreeType) at a large size, with a few
extra stroke widths for heavier weights, into a glyph atlas (box-filtered to half size).
Every image then picks a glyph and a random size, aspect, shear, rotation and position,
which one bilinear resample applies at 2x the target resolution; averaging 2x2 blocks down
to the target size is the antialiasing. Colours come in pairs at least ``MIN_CONTRAST``
apart in BT.601 luma, drawn as :class:`~cnnlab.data.augment.Recolor` draws them; some
backgrounds get a second colour as a gradient, some images noise or a slight blur, some a
cut-off neighbouring digit at the side, as house numbers (SVHN) have.

Only fonts bundled with matplotlib are used, so a seed gives the same images on every
machine with the same matplotlib, Pillow (and its FreeType), numpy and torch. Generated splits are cached as .npy
in the content-keyed cache (:mod:`cnnlab.data.cache`, ``$CNNLAB_CACHE``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.progress import track

from cnnlab.data.arrays import Split
from cnnlab.data.augment import GaussianBlur, contrasting_colors, luminance, with_luminance
from cnnlab.data.cache import entry_folder, load_split, save_split
from cnnlab.errors import ConfigError

# Bump when the rendering changes, so caches written by older code are not reused.
GENERATOR_VERSION = 1

FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf",
)  # fmt: skip
SIZES = (28, 32)
DEFAULT_TRAIN = 20_000
DEFAULT_TEST = 5_000
SEEDS = {"train": 0, "test": 1}  # different seeds: the splits are disjoint draws
MIN_CONTRAST = 0.35

_FONT_PX = 96  # glyph size in the atlas: digits come out about 70 px tall
_STROKES = (0, 2, 5)  # extra outline in pixels at _FONT_PX: regular, heavier, heaviest
_STROKE_P = (0.6, 0.25, 0.15)
# Glyphs are rendered at _FONT_PX, box-filtered down by _ATLAS_REDUCE, resampled at
# _SUPERSAMPLE x the target size and box-filtered again: measured 3.5x faster than sampling
# full-size glyphs at 4x the target size, with no visible difference.
_ATLAS_REDUCE = 2
_SUPERSAMPLE = 2
_CHUNK = 1024
_PROGRESS_FROM = 2000  # fewer images render too fast to need a progress bar

_log = logging.getLogger(__name__)


def font_dir() -> Path:
    """Where matplotlib keeps its bundled TrueType fonts."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class _Atlas:
    """Every (font, stroke, digit) glyph, centred on its bounding box in an S x S cell."""

    masks: torch.Tensor  # float (G, 1, S, S) in [0, 1]; glyph (font * strokes + stroke) * 10 + d
    widths: np.ndarray  # (G,) bounding-box width in atlas pixels
    heights: np.ndarray  # (G,) the height digits of that font and stroke share (their median)
    fonts: tuple[str, ...]

    @property
    def cell(self) -> int:
        return self.masks.shape[-1]


def font_files() -> list[tuple[str, int]]:
    """(name, size in bytes) of each FONT_FILES entry this matplotlib has."""
    paths = (font_dir() / name for name in FONT_FILES)
    return [(path.name, path.stat().st_size) for path in paths if path.is_file()]


def usable_fonts() -> tuple[str, ...]:
    """The names in FONT_FILES whose ten digits render as ten distinct, non-empty glyphs."""
    return _atlas().fonts


@functools.cache
def _atlas() -> _Atlas:
    glyphs: list[np.ndarray] = []
    fonts: list[str] = []
    for name in FONT_FILES:
        rendered = _render_font(font_dir() / name)
        if rendered is not None:
            glyphs += rendered
            fonts.append(name)
    if not fonts:
        raise ConfigError(
            f"printed digits: none of matplotlib's fonts in {font_dir()} renders digits; "
            "reinstall matplotlib (pip install --force-reinstall matplotlib)"
        )
    r = _ATLAS_REDUCE
    cell = 4 * r * math.ceil((max(max(g.shape) for g in glyphs) + 4) / (4 * r))
    masks = np.zeros((len(glyphs), 1, cell, cell), np.float32)
    for i, glyph in enumerate(glyphs):
        h, w = glyph.shape
        top, left = (cell - h) // 2, (cell - w) // 2
        masks[i, 0, top : top + h, left : left + w] = glyph / 255
    masks = masks.reshape(len(glyphs), 1, cell // r, r, cell // r, r).mean((3, 5))
    widths = np.array([g.shape[1] for g in glyphs], np.float64) / r
    heights = np.array([g.shape[0] for g in glyphs], np.float64).reshape(-1, 10) / r
    shared = np.repeat(np.median(heights, axis=1), 10)
    return _Atlas(torch.from_numpy(masks), widths, shared, tuple(fonts))


def _render_font(path: Path) -> list[np.ndarray] | None:
    """Tight-cropped masks of the digits 0-9 for each stroke, or None if the font lacks them."""
    try:
        # The basic layout engine: no dependence on whether libraqm is installed.
        font = ImageFont.truetype(str(path), _FONT_PX, layout_engine=ImageFont.Layout.BASIC)
    except OSError:
        return None
    missing = _draw(font, "\uffff", 0)  # a code point no font maps: its "missing" glyph
    digits = [_draw(font, str(d), 0) for d in range(10)]
    shapes = {m.tobytes() + bytes(str(m.shape), "ascii") for m in digits if m is not None}
    if (
        len(shapes) < 10  # an empty digit, or two alike (the same fallback box)
        or any(m is not None and missing is not None and np.array_equal(m, missing) for m in digits)
    ):
        return None
    # A stroke only thickens a glyph that renders, so none of these is empty.
    return [m for s in _STROKES for d in range(10) if (m := _draw(font, str(d), s)) is not None]


def _draw(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> np.ndarray | None:
    canvas = Image.new("L", (3 * _FONT_PX, 3 * _FONT_PX))
    ImageDraw.Draw(canvas).text(
        (_FONT_PX, _FONT_PX), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    pixels = np.asarray(canvas)
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    if len(rows) == 0:
        return None
    return pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()


# --- drawing the per-image parameters -----------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """Everything random about n images, drawn up front so chunking cannot change it."""

    labels: np.ndarray  # (n,) int64
    glyph: np.ndarray  # (n,) atlas index
    inverse: np.ndarray  # (n, 3, 3) render pixel -> atlas pixel, centred coordinates
    neighbour: np.ndarray  # (n,) atlas index of a cut-off neighbouring digit, -1 for none
    neighbour_shift: np.ndarray  # (n,) its offset in atlas pixels along the glyph's x axis
    fg: np.ndarray  # (n, 3) digit colour
    bg: np.ndarray  # (n, 3) background colour
    bg2: np.ndarray  # (n, 3) gradient end colour (same luma as bg); equal to bg for none
    angle: np.ndarray  # (n,) gradient direction
    noise: np.ndarray  # (n,) noise std (0 for none)
    blur: np.ndarray  # (n,) blur sigma in target pixels (0 for none)


def _draw_params(n: int, rng: np.random.Generator, size: int, atlas: _Atlas) -> _Draws:
    n_fonts = len(atlas.fonts)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)  # balanced classes
    font = rng.integers(0, n_fonts, n)
    stroke = rng.choice(len(_STROKES), size=n, p=_STROKE_P)
    glyph = (font * len(_STROKES) + stroke) * 10 + labels

    # A neighbouring digit of the same font, cut off by the border, as in house numbers. Its
    # digit is large and centred across, so the neighbour never fits whole and the label
    # stays the digit in the middle.
    has_neighbour = rng.random(n) < 0.3

    # Geometry, in target pixels: digit height, x stretch, shear, rotation, jitter.
    height = size * np.where(has_neighbour, rng.uniform(0.7, 0.85, n), rng.uniform(0.5, 0.85, n))
    scale_y = height * _SUPERSAMPLE / atlas.heights[glyph]
    scale_x = scale_y * np.exp(rng.uniform(-0.15, 0.15, n))
    shear = rng.uniform(-0.12, 0.12, n)
    angle = np.deg2rad(rng.uniform(-15, 15, n))
    width = atlas.widths[glyph] * scale_x / _SUPERSAMPLE
    room_x = np.maximum(0.0, (size - width) / 2 - 1)
    room_y = np.maximum(0.0, (size - height) / 2 - 1)
    room_x *= np.where(has_neighbour, 0.15, 0.9)
    shift = rng.uniform(-1, 1, (n, 2)) * np.stack([room_x, 0.9 * room_y], 1) * _SUPERSAMPLE
    inverse = _inverse_maps(scale_x, scale_y, shear, angle, shift)

    other = (font * len(_STROKES) + stroke) * 10 + rng.integers(0, 10, n)
    gap = rng.uniform(0.08, 0.25, n) * atlas.heights[glyph]
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    neighbour_shift = side * ((atlas.widths[glyph] + atlas.widths[other]) / 2 + gap)
    neighbour = np.where(has_neighbour, other, -1)

    # Colours: a contrasting pair, the digit light or dark with equal odds.
    light, dark = (
        c.numpy().astype(np.float64)
        for c in contrasting_colors(torch.from_numpy(rng.random((n, 8))), MIN_CONTRAST)
    )
    invert = rng.random(n) < 0.5
    fg = np.where(invert[:, None], dark, light)
    bg = np.where(invert[:, None], light, dark)
    # A gradient to another hue of the same luma keeps the contrast with the digit.
    second = with_luminance(
        torch.from_numpy(rng.random((n, 3))), luminance(torch.from_numpy(bg))
    ).numpy()
    bg2 = np.where((rng.random(n) < 0.35)[:, None], second, bg)
    gradient_angle = rng.uniform(0, 2 * np.pi, n)
    noise = np.where(rng.random(n) < 0.3, rng.uniform(0.01, 0.08, n), 0.0)
    blur = np.where(rng.random(n) < 0.3, rng.uniform(0.3, 1.0, n), 0.0)
    return _Draws(
        labels, glyph, inverse, neighbour, neighbour_shift, fg, bg, bg2, gradient_angle, noise, blur
    )


def _inverse_maps(
    scale_x: np.ndarray,
    scale_y: np.ndarray,
    shear: np.ndarray,
    angle: np.ndarray,
    shift: np.ndarray,
) -> np.ndarray:
    """(n, 3, 3) maps from render pixels to atlas pixels: undo shift, rotation, shear, scale."""
    n = len(angle)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    untranslate, unrotate, unshear, unscale = (eye.copy() for _ in range(4))
    untranslate[:, :2, 2] = -shift
    cos, sin = np.cos(angle), np.sin(angle)
    unrotate[:, 0, 0], unrotate[:, 0, 1], unrotate[:, 1, 0], unrotate[:, 1, 1] = cos, sin, -sin, cos
    unshear[:, 0, 1] = -shear
    unscale[:, 0, 0], unscale[:, 1, 1] = 1 / scale_x, 1 / scale_y
    return unscale @ unshear @ unrotate @ untranslate


# --- rendering ------------------------------------------------------------------------------


def _coverage(atlas: _Atlas, glyph: np.ndarray, inverse: np.ndarray, size: int) -> torch.Tensor:
    """(B, 1, size, size) ink coverage in [0, 1]: sampled at 2x, then 2x2 block means."""
    render = size * _SUPERSAMPLE
    cell = atlas.cell
    m = torch.from_numpy(inverse).float()
    centred = torch.arange(render, dtype=torch.float32) - (render - 1) / 2
    grid = torch.empty(len(glyph), render, render, 2)
    for k in range(2):
        # grid_sample's [-1, 1] spans the cell's pixel edges (align_corners=False).
        m_k = m[:, k] * (2 / cell)
        row = m_k[:, 1, None] * centred + m_k[:, 2, None]  # (B, H)
        col = m_k[:, 0, None] * centred  # (B, W)
        # Written through out=: assigning into the strided grid[..., k] is 5x slower.
        torch.add(row[:, :, None], col[:, None, :], out=grid[..., k])
    masks = atlas.masks[torch.from_numpy(glyph)]
    ink = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(ink, _SUPERSAMPLE)


def _render_chunk(atlas: _Atlas, draws: _Draws, rng: np.random.Generator, size: int) -> np.ndarray:
    ink = _coverage(atlas, draws.glyph, draws.inverse, size)
    with_neighbour = np.flatnonzero(draws.neighbour >= 0)
    if len(with_neighbour):
        move = np.broadcast_to(np.eye(3), (len(with_neighbour), 3, 3)).copy()
        move[:, 0, 2] = -draws.neighbour_shift[with_neighbour]
        inverse = move @ draws.inverse[with_neighbour]
        extra = _coverage(atlas, draws.neighbour[with_neighbour], inverse, size)
        index = torch.from_numpy(with_neighbour)
        ink[index] = torch.maximum(ink[index], extra)

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
    background = bg + (bg2 - bg) * t
    image = background + (fg - background) * ink
    image = GaussianBlur(1.0).apply(image, torch.from_numpy(draws.blur).float())
    noisy = np.flatnonzero(draws.noise > 0)
    if len(noisy):
        grain = rng.standard_normal((len(noisy), 3, size, size), dtype=np.float32)
        grain *= draws.noise[noisy, None, None, None].astype(np.float32)
        image[torch.from_numpy(noisy)] += torch.from_numpy(grain)
    return image.clamp_(0, 1).mul_(255).round_().to(torch.uint8).numpy()


def render_printed_digits(n: int, seed: int, size: int = 32) -> Split:
    """``n`` printed digits, uint8 (n, 3, size, size), labels 0-9 balanced; same seed, same bytes."""
    _check(n, size)
    atlas = _atlas()
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    draws = _draw_params(n, rng, size, atlas)
    images = np.empty((n, 3, size, size), np.uint8)
    starts = track(
        range(0, n, _CHUNK),
        total=math.ceil(n / _CHUNK),
        description=f"printed digits: rendering {n} (cached afterwards)",
        console=Console(stderr=True),
        transient=True,
        disable=n < _PROGRESS_FROM,
    )
    # Rendering is deterministic per pixel, so the thread count cannot change the bytes.
    for start in starts:
        part = slice(start, start + _CHUNK)
        chunk = _Draws(*(getattr(draws, f)[part] for f in _Draws.__dataclass_fields__))
        images[part] = _render_chunk(atlas, chunk, rng, size)
    return Split(images, draws.labels)


def _check(n: int, size: int) -> None:
    if size not in SIZES:
        raise ConfigError(f"printed digits: size {size} is not supported; use 28 or 32")
    if n < 0:
        raise ConfigError(f"printed digits: count {n} is negative; use 0 or more images")


# --- cache ---------------------------------------------------------------------------------


def load_printed_digits(split: str, n: int, size: int = 32, cache_dir: Path | None = None) -> Split:
    """The ``split`` ("train" or "test") draw of ``n`` printed digits, cached after the first."""
    if split not in SEEDS:
        raise ConfigError(f"printed digits: unknown split {split!r}; use train or test")
    _check(n, size)
    seed = SEEDS[split]
    folder = cache_folder(seed, n, size, cache_dir)
    cached = load_split(folder, "printed digits")
    if cached is not None:
        return cached
    started = time.perf_counter()
    data = render_printed_digits(n, seed, size)
    _log.info("printed digits: rendered %d in %.1f s", n, time.perf_counter() - started)
    save_split(folder, data, "printed digits")
    return data


def cache_folder(seed: int, n: int, size: int, cache_dir: Path | None = None) -> Path:
    """Where the draw (seed, n, size) is cached: keyed by all that shapes the images."""
    key = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "size": size,
        # The files, not the fonts that pass the render check: that check builds the whole
        # atlas, which a cache hit should not pay for. It depends only on these files anyway.
        "fonts": font_files(),
    }
    return entry_folder("printed", key, cache_dir)
