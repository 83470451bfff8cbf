"""Draw the hand-made digit pictures in this folder and their labels.json.

The digits are the pen strokes of ../digits/make_digits.py (control points written by
hand, not taken from a font), drawn in styles the printed-digit generator never
produces, so a model's score on them says how it does on pictures nobody generated:

- a broad calligraphy nib whose stroke width follows the pen's direction;
- a brush that thins towards the end of each stroke;
- several colours in one digit, one per stroke, or a rainbow along the stroke;
- ruled and squared notebook paper, a whiteboard with a glare, graph paper;
- a pencil's grain, a felt-tip's soaked edges, chalk that skips on the board;
- neon tubes (a glow around a thin bright line), embossed paper (light and shadow only);
- the digit inside a painted circle, or crossed by the paper's edge shadow.

The pictures are committed; run this again (python tests/data/digits-wild/make_pictures.py)
only to change them.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "digits"))
from make_digits import STROKES, smooth  # noqa: E402  (the hand-written strokes)

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Picture:
    file: str
    digit: str  # key of STROKES; the label is its first character
    size: tuple[int, int]
    style: str  # a key of STYLES
    seed: int


def placed_strokes(digit: str, size: tuple[int, int], slant: float) -> list[np.ndarray]:
    """Each stroke's smooth path in supersampled pixels, the digit 70% of the height."""
    w, h = size
    digit_h = min(0.7 * max(w, h), 0.85 * h)
    scale = digit_h / 140 * SUPERSAMPLE
    shear = np.tan(np.radians(slant))
    strokes = []
    for stroke in STROKES[digit]:
        pts = np.array(smooth(stroke, per_segment=24))
        pts[:, 0] += shear * (70 - pts[:, 1])
        strokes.append(pts)
    every = np.vstack(strokes)
    centre = (every.min(0) + every.max(0)) / 2
    return [(p - centre) * scale + np.array([w, h]) * SUPERSAMPLE / 2 for p in strokes]


def stamp(
    canvas: ImageDraw.ImageDraw, path: np.ndarray, radius: Callable[[int, np.ndarray], float], fill
) -> None:
    """Draw a stroke as overlapping discs whose radius may change along it."""
    for i, (x, y) in enumerate(path):
        direction = path[min(i + 1, len(path) - 1)] - path[max(i - 1, 0)]
        r = radius(i, direction)
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def densify(path: np.ndarray, step: float = 1.5) -> np.ndarray:
    out = [path[0]]
    for a, b in itertools.pairwise(path):
        n = max(1, int(np.hypot(*(b - a)) / step))
        out += [a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:]]
    return np.array(out)


def mask(strokes: list[np.ndarray], size: tuple[int, int], radius) -> np.ndarray:
    w, h = size
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for k, stroke in enumerate(strokes):
        path = densify(stroke)
        last = max(1, len(path) - 1)
        stamp(draw, path, lambda i, d, k=k, last=last: radius(k, i / last, d), 255)
    return np.asarray(canvas.resize(size, Image.Resampling.BOX), np.float64) / 255


def pen_width(size: tuple[int, int], fraction: float) -> float:
    return fraction * min(0.7 * max(size), 0.85 * size[1]) * SUPERSAMPLE / 2


def paper(size, top, bottom, rng, grain=3.0) -> np.ndarray:
    w, h = size
    t = np.linspace(0, 1, h)[:, None, None]
    base = np.array(top, np.float64) + (np.array(bottom, np.float64) - top) * t
    return np.broadcast_to(base, (h, w, 3)) + rng.normal(0, grain, (h, w, 3))


def lines(image: np.ndarray, every: int, colour, vertical: bool = False, width: int = 1) -> None:
    for y in range(every // 2, image.shape[0], every):
        image[y : y + width] = image[y : y + width] * 0.35 + np.array(colour) * 0.65
    if vertical:
        for x in range(every // 2, image.shape[1], every):
            image[:, x : x + width] = image[:, x : x + width] * 0.35 + np.array(colour) * 0.65


def blend(image: np.ndarray, coverage: np.ndarray, colour) -> np.ndarray:
    colour = np.asarray(colour, np.float64)
    if colour.ndim == 1:
        colour = colour[None, None, :]
    return image * (1 - coverage[:, :, None]) + colour * coverage[:, :, None]


def nib(pic: Picture, rng) -> np.ndarray:
    """A broad nib at 40 degrees: wide across it, thin along it (italic calligraphy)."""
    strokes = placed_strokes(pic.digit, pic.size, 8)
    base = pen_width(pic.size, 0.16)
    angle = np.radians(40)
    across = np.array([np.cos(angle), np.sin(angle)])

    def radius(k, t, d):
        norm = float(np.hypot(*d)) or 1.0
        return base * (0.2 + 0.8 * abs(across[0] * d[1] - across[1] * d[0]) / norm)

    image = paper(pic.size, (246, 242, 228), (232, 226, 206), rng)
    return blend(image, mask(strokes, pic.size, radius), (20, 20, 30))


def brush(pic: Picture, rng) -> np.ndarray:
    """A brush pressed hard at the start of each stroke, lifting towards its end."""
    strokes = placed_strokes(pic.digit, pic.size, 4)
    base = pen_width(pic.size, 0.2)
    image = paper(pic.size, (238, 236, 230), (218, 214, 206), rng)
    return blend(
        image, mask(strokes, pic.size, lambda k, t, d: base * (1.0 - 0.7 * t)), (150, 20, 30)
    )


def strokes_in_colours(pic: Picture, rng) -> np.ndarray:
    """Each stroke in another felt-tip colour, on white paper."""
    strokes = placed_strokes(pic.digit, pic.size, 5)
    base = pen_width(pic.size, 0.12)
    colours = [(200, 30, 40), (30, 90, 200), (20, 150, 60), (230, 140, 10)]
    image = paper(pic.size, (252, 252, 250), (238, 238, 234), rng)
    for k, stroke in enumerate(strokes):
        cover = mask([stroke], pic.size, lambda kk, t, d: base)
        image = blend(image, cover, colours[(k + pic.seed) % len(colours)])
    return image


def rainbow(pic: Picture, rng) -> np.ndarray:
    """One stroke whose colour runs through the hues as the pen moves."""
    strokes = placed_strokes(pic.digit, pic.size, 3)
    base = pen_width(pic.size, 0.14)
    w, h = pic.size
    image = paper(pic.size, (30, 30, 36), (14, 14, 18), rng, grain=2)
    canvas = Image.new("RGB", (w * SUPERSAMPLE, h * SUPERSAMPLE))
    alpha = Image.new("L", canvas.size)
    draw, draw_alpha = ImageDraw.Draw(canvas), ImageDraw.Draw(alpha)
    total = sum(len(densify(s)) for s in strokes)
    done = 0
    for stroke in strokes:
        for x, y in densify(stroke):
            hue = done / total
            colour = tuple(
                int(255 * (0.5 + 0.5 * np.cos(2 * np.pi * (hue + o)))) for o in (0, 1 / 3, 2 / 3)
            )
            draw.ellipse((x - base, y - base, x + base, y + base), fill=colour)
            draw_alpha.ellipse((x - base, y - base, x + base, y + base), fill=255)
            done += 1
    rgb = np.asarray(canvas.resize(pic.size, Image.Resampling.BOX), np.float64)
    cover = np.asarray(alpha.resize(pic.size, Image.Resampling.BOX), np.float64) / 255
    return image * (1 - cover[:, :, None]) + rgb


def notebook(pic: Picture, rng) -> np.ndarray:
    """Blue ballpoint on ruled paper with a red margin line."""
    strokes = placed_strokes(pic.digit, pic.size, 10)
    image = paper(pic.size, (250, 250, 245), (240, 240, 232), rng)
    lines(image, max(6, pic.size[1] // 7), (150, 180, 220))
    margin = pic.size[0] // 6
    image[:, margin : margin + 1] = (220, 90, 90)
    base = pen_width(pic.size, 0.07)
    return blend(image, mask(strokes, pic.size, lambda k, t, d: base), (30, 40, 150))


def squared(pic: Picture, rng) -> np.ndarray:
    """Pencil on squared (graph) paper: gray, grainy, uneven pressure."""
    strokes = placed_strokes(pic.digit, pic.size, 0)
    image = paper(pic.size, (245, 246, 240), (235, 236, 228), rng)
    lines(image, max(5, pic.size[1] // 10), (170, 200, 190), vertical=True)
    base = pen_width(pic.size, 0.09)
    cover = mask(strokes, pic.size, lambda k, t, d: base * (0.8 + 0.3 * np.sin(9 * t)))
    cover *= np.clip(rng.normal(0.75, 0.2, cover.shape), 0, 1)  # graphite grain
    return blend(image, cover, (70, 70, 75))


def whiteboard(pic: Picture, rng) -> np.ndarray:
    """Green marker on a whiteboard, a bright glare across it."""
    strokes = placed_strokes(pic.digit, pic.size, 6)
    w, h = pic.size
    image = paper(pic.size, (236, 240, 242), (214, 220, 224), rng, grain=1.5)
    base = pen_width(pic.size, 0.13)
    image = blend(image, mask(strokes, pic.size, lambda k, t, d: base), (20, 120, 70))
    yy, xx = np.mgrid[0:h, 0:w]
    glare = np.exp(-(((xx - 0.7 * w) + 0.6 * (yy - 0.3 * h)) ** 2) / (2 * (0.12 * w) ** 2))
    return image + (255 - image) * 0.75 * glare[:, :, None]


def chalk(pic: Picture, rng) -> np.ndarray:
    """Chalk that skips on a dark board: the stroke broken into dusty specks."""
    strokes = placed_strokes(pic.digit, pic.size, 4)
    image = paper(pic.size, (40, 52, 48), (26, 34, 32), rng, grain=3)
    base = pen_width(pic.size, 0.14)
    cover = mask(strokes, pic.size, lambda k, t, d: base)
    cover *= rng.random(cover.shape) < 0.7
    cover = (
        np.asarray(
            Image.fromarray((cover * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6)),
            np.float64,
        )
        / 255
    )
    return blend(image, np.clip(cover * 1.4, 0, 1), (230, 230, 220))


def felt_tip(pic: Picture, rng) -> np.ndarray:
    """A soaked felt tip: ink bleeds into the paper, darker at the stroke's edges."""
    strokes = placed_strokes(pic.digit, pic.size, 2)
    base = pen_width(pic.size, 0.15)
    cover = mask(strokes, pic.size, lambda k, t, d: base)
    bled = (
        np.asarray(
            Image.fromarray((cover * 255).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(base / SUPERSAMPLE / 2)
            ),
            np.float64,
        )
        / 255
    )
    edge = np.clip(bled - 0.6 * cover, 0, 1)
    image = paper(pic.size, (244, 238, 220), (226, 218, 196), rng)
    image = blend(image, np.clip(bled, 0, 1) * 0.55, (90, 40, 140))
    return blend(image, edge * 0.8, (60, 20, 100))


def neon(pic: Picture, rng) -> np.ndarray:
    """A neon tube: a thin near-white core inside a wide coloured glow, on a dark wall."""
    strokes = placed_strokes(pic.digit, pic.size, 0)
    core = mask(strokes, pic.size, lambda k, t, d: pen_width(pic.size, 0.04))
    glow = (
        np.asarray(
            Image.fromarray((core * 255).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(pic.size[1] / 25)
            ),
            np.float64,
        )
        / 255
    )
    image = paper(pic.size, (24, 18, 30), (10, 8, 14), rng, grain=2)
    image = image + np.array([255, 40, 180]) * np.clip(glow * 2.5, 0, 1)[:, :, None]
    return blend(image, core, (255, 235, 250))


def embossed(pic: Picture, rng) -> np.ndarray:
    """Pressed into paper: no ink, only a lit edge and a shadowed edge."""
    strokes = placed_strokes(pic.digit, pic.size, 3)
    cover = mask(strokes, pic.size, lambda k, t, d: pen_width(pic.size, 0.16))
    shift = max(1, pic.size[1] // 40)
    light = np.clip(cover - np.roll(cover, (shift, shift), (0, 1)), 0, 1)
    dark = np.clip(cover - np.roll(cover, (-shift, -shift), (0, 1)), 0, 1)
    image = paper(pic.size, (214, 206, 190), (196, 188, 172), rng, grain=2)
    image = blend(image, cover * 0.25, (150, 142, 128))
    image = blend(image, light, (250, 246, 236))
    return blend(image, dark, (90, 84, 74))


def circled(pic: Picture, rng) -> np.ndarray:
    """White digit in a painted blue disc on a yellow wall (a street or bus sign)."""
    strokes = placed_strokes(pic.digit, pic.size, 0)
    w, h = pic.size
    image = paper(pic.size, (232, 200, 60), (210, 176, 40), rng)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = np.clip(0.47 * min(w, h) - np.hypot(xx - w / 2, yy - h / 2), 0, 1)
    image = blend(image, disc, (30, 70, 160))
    base = pen_width(pic.size, 0.13)
    return blend(image, mask(strokes, pic.size, lambda k, t, d: base), (250, 250, 250))


STYLES = {
    "nib": nib, "brush": brush, "colours": strokes_in_colours, "rainbow": rainbow,
    "notebook": notebook, "squared": squared, "whiteboard": whiteboard, "chalk": chalk,
    "felt": felt_tip, "neon": neon, "embossed": embossed, "circled": circled,
}  # fmt: skip

PICTURES = [
    Picture("w00_nib.png", "0", (80, 96), "nib", 1),
    Picture("w01_neon.png", "1", (90, 110), "neon", 2),
    Picture("w02_brush.png", "2", (100, 100), "brush", 3),
    Picture("w03_colours.png", "3", (96, 110), "colours", 4),
    Picture("w04_notebook.jpg", "4", (120, 120), "notebook", 5),
    Picture("w05_whiteboard.jpg", "5", (160, 120), "whiteboard", 6),
    Picture("w06_squared.png", "6", (90, 110), "squared", 7),
    Picture("w07_circled.png", "7", (100, 100), "circled", 8),
    Picture("w08_rainbow.png", "8", (90, 110), "rainbow", 9),
    Picture("w09_felt.png", "9", (90, 110), "felt", 10),
    Picture("w10_chalk.jpg", "0", (110, 110), "chalk", 11),
    Picture("w11_nib.png", "1", (70, 100), "nib", 12),
    Picture("w12_embossed.png", "2b", (110, 110), "embossed", 13),
    Picture("w13_brush.png", "3", (100, 120), "brush", 14),
    Picture("w14_rainbow.png", "4", (100, 100), "rainbow", 15),
    Picture("w15_colours.png", "5", (90, 110), "colours", 16),
    Picture("w16_neon.png", "6", (100, 120), "neon", 17),
    Picture("w17_notebook.jpg", "7b", (110, 130), "notebook", 18),
    Picture("w18_embossed.png", "8", (110, 120), "embossed", 19),
    Picture("w19_circled.png", "9", (110, 110), "circled", 20),
    Picture("w20_whiteboard.jpg", "1b", (140, 110), "whiteboard", 21),
    Picture("w21_squared.png", "2", (100, 110), "squared", 22),
    Picture("w22_felt.png", "4b", (100, 110), "felt", 23),
    Picture("w23_chalk.jpg", "7", (100, 110), "chalk", 24),
]


def main() -> None:
    labels = {}
    for pic in PICTURES:
        rgb = STYLES[pic.style](pic, np.random.default_rng(pic.seed))
        image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
        image.save(HERE / pic.file, **({"quality": 88} if pic.file.endswith(".jpg") else {}))
        labels[pic.file] = pic.digit[0]
    (HERE / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    print(f"wrote {len(labels)} pictures and labels.json to {HERE}")


if __name__ == "__main__":
    main()
