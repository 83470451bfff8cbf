"""Draw the hand-made digit pictures in this folder and their labels.json.

Every digit is a few pen strokes whose control points were written by hand below
(x to the right in 0..100, y down in 0..140), not taken from a font; the strokes are
smoothed through their points, drawn thick, and then made to look photographed or
scanned: paper or chalkboard backgrounds with gradients, sensor noise, slight blur,
dark ink on light and light chalk on dark, many sizes and aspect ratios, and every
file format and image mode `cnnlab predict` reads (one JPEG stores its pixels
rotated and says so in its EXIF orientation tag, as phone cameras do).

Each digit is framed the way MNIST frames its digits once the picture is scaled to
fit the model's square input: about 70% of the longer side tall, centred.

The pictures are committed; run this again (python tests/data/digits/make_digits.py)
only to change them. Output depends on Pillow's encoders, so bytes may differ
between Pillow versions; the pictures do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent

Stroke = list[tuple[float, float]]

# Pen strokes per digit, as a hand would write them. A corner (the top of a 5, the
# elbow of a 7) is where one stroke ends and the next begins; within a stroke the
# pen moves smoothly through the points.
STROKES: dict[str, list[Stroke]] = {
    "0": [
        [(52, 4), (30, 12), (16, 38), (12, 72), (18, 106), (40, 134), (66, 132),
         (86, 104), (90, 64), (82, 28), (64, 8), (48, 6)],
    ],
    "1": [
        [(34, 30), (48, 16), (60, 3)],
        [(60, 3), (57, 50), (54, 96), (52, 137)],
    ],
    "1b": [
        [(60, 4), (56, 48), (51, 96), (47, 136)],
    ],
    "2": [
        [(14, 36), (22, 14), (46, 3), (72, 10), (83, 32), (76, 60), (52, 90), (14, 132)],
        [(14, 132), (52, 128), (92, 133)],
    ],
    "2b": [
        [(18, 28), (36, 8), (62, 6), (80, 24), (78, 50), (58, 78), (30, 108), (10, 134)],
        [(10, 134), (40, 130), (70, 131), (94, 126)],
    ],
    "3": [
        [(16, 20), (38, 5), (66, 6), (80, 26), (72, 52), (44, 66)],
        [(44, 66), (72, 74), (88, 100), (78, 126), (48, 137), (16, 124)],
    ],
    "4": [
        [(62, 4), (36, 50), (10, 94)],
        [(10, 94), (52, 92), (94, 94)],
        [(72, 38), (70, 86), (68, 136)],
    ],
    "4b": [
        [(22, 6), (16, 48), (14, 84)],
        [(14, 84), (54, 82), (92, 80)],
        [(76, 10), (74, 72), (72, 138)],
    ],
    "5": [
        [(84, 6), (56, 5), (30, 7)],
        [(30, 7), (27, 34), (24, 62)],
        [(24, 62), (50, 50), (76, 60), (89, 90), (80, 122), (52, 137), (16, 126)],
    ],
    "6": [
        [(76, 8), (50, 20), (28, 48), (15, 86), (20, 120), (46, 137), (74, 128),
         (86, 100), (74, 76), (48, 70), (24, 86)],
    ],
    "7": [
        [(8, 12), (50, 8), (92, 6)],
        [(92, 6), (66, 56), (40, 136)],
    ],
    "7b": [
        [(12, 14), (52, 10), (90, 12)],
        [(90, 12), (70, 60), (50, 136)],
        [(38, 72), (60, 71), (84, 69)],
    ],
    "8": [
        [(72, 18), (56, 5), (32, 7), (22, 28), (34, 50), (56, 63), (78, 82), (84, 110),
         (66, 134), (38, 136), (17, 116), (24, 90), (46, 70), (68, 52), (80, 32), (72, 18)],
    ],
    "9": [
        [(82, 28), (64, 9), (36, 8), (18, 28), (24, 56), (50, 64), (74, 50), (84, 28)],
        [(84, 28), (80, 80), (70, 136)],
    ],
}  # fmt: skip


def smooth(points: Stroke, per_segment: int = 12) -> Stroke:
    """A Catmull-Rom curve through the hand-placed points: the pen's smooth path."""
    if len(points) < 3:
        return points
    p = np.array(points, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        for t in np.linspace(0, 1, per_segment, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(
                0.5
                * (
                    2 * p1
                    + (p2 - p0) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
                )
            )
    out.append(p[-2])
    return [(float(x), float(y)) for x, y in out]


def ink_mask(
    strokes: list[Stroke], size: tuple[int, int], pen: float, slant: float, supersample: int = 4
) -> np.ndarray:
    """Coverage in [0, 1] of the strokes drawn into a (W, H) picture, anti-aliased.

    The digit's box is scaled to about 70% of the longer side (less when the shorter
    side cannot hold it) and centred; ``slant`` shears it like a hand leaning right;
    ``pen`` is the stroke width as a fraction of the digit's height.
    """
    w, h = size
    digit_h = min(0.7 * max(w, h), 0.88 * h)
    scale = digit_h / 140 * supersample
    shear = np.tan(np.radians(slant))
    canvas = Image.new("L", (w * supersample, h * supersample), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(pen * digit_h * supersample))
    placed = []
    for stroke in strokes:
        pts = np.array(smooth(stroke))
        pts[:, 0] += shear * (70 - pts[:, 1])  # lean: the top moves right
        placed.append(pts)
    allpts = np.vstack(placed)
    centre = (allpts.min(axis=0) + allpts.max(axis=0)) / 2
    for pts in placed:
        xy = (pts - centre) * scale + np.array([w, h]) * supersample / 2
        draw.line([tuple(q) for q in xy], fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen tips
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    small = canvas.resize((w, h), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


@dataclass(frozen=True)
class Picture:
    file: str
    digit: str  # key of STROKES; the label is its first character
    size: tuple[int, int]  # (W, H)
    background: tuple[tuple[int, int, int], tuple[int, int, int]]  # gradient from, to
    ink: tuple[int, int, int]
    pen: float = 0.13
    slant: float = 6.0
    noise: float = 5.0  # std of the sensor noise, in 0..255 units
    blur: float = 0.6  # Gaussian blur radius as a fraction of the pen width
    gradient: str = "vertical"  # or "diagonal", "radial"
    seed: int = 0


PAPER = ((236, 232, 214), (206, 200, 180))
WHITE_PAPER = ((250, 250, 247), (228, 228, 222))
GRAY_PAPER = ((196, 196, 190), (150, 150, 146))
BOARD = ((32, 58, 44), (18, 34, 26))
SLATE = ((62, 64, 70), (30, 31, 36))
MID_GRAY = ((132, 132, 132), (112, 112, 112))
BLUE_PEN, BLACK_PEN, RED_PEN = (28, 40, 120), (24, 24, 28), (168, 24, 32)
CHALK = (236, 236, 222)

PICTURES = [
    Picture("d0_rgb.png", "0", (64, 64), PAPER, BLUE_PEN, seed=1),
    Picture("d1_rgba.png", "1", (80, 100), WHITE_PAPER, BLACK_PEN, slant=3, seed=2),
    Picture("d1b_la.png", "1b", (48, 60), WHITE_PAPER, BLUE_PEN, slant=2, seed=3),
    Picture("d2_palette.png", "2", (96, 96), BOARD, CHALK, noise=7, seed=4),
    Picture("d2b_rgb_large.png", "2b", (400, 300), SLATE, CHALK, gradient="radial", seed=5),
    Picture("d3_exif_rot90.jpg", "3", (300, 400), GRAY_PAPER, BLACK_PEN, gradient="diagonal", seed=6),
    Picture("d4_light_on_dark.bmp", "4", (40, 40), SLATE, CHALK, pen=0.14, slant=0, seed=7),
    Picture("d4b_animated.gif", "4b", (100, 90), PAPER, RED_PEN, slant=-4, seed=8),
    Picture("d5_rgb.webp", "5", (200, 200), WHITE_PAPER, RED_PEN, seed=9),
    Picture("d6_gray16.png", "6", (56, 72), GRAY_PAPER, BLACK_PEN, gradient="diagonal", seed=10),
    Picture("d7_midgray.png", "7", (90, 90), MID_GRAY, (200, 200, 200), noise=6, seed=11),
    Picture("d7b_exif_rot270.jpg", "7b", (120, 160), PAPER, BLUE_PEN, seed=12),
    Picture("d8_cmyk.jpg", "8", (150, 150), PAPER, BLACK_PEN, pen=0.11, seed=13),
    Picture("d9_rgba.webp", "9", (72, 88), BOARD, CHALK, slant=8, seed=14),
]  # fmt: skip


def background(pic: Picture, rng: np.random.Generator) -> np.ndarray:
    w, h = pic.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if pic.gradient == "vertical":
        t = yy / max(1, h - 1)
    elif pic.gradient == "diagonal":
        t = (xx / max(1, w - 1) + yy / max(1, h - 1)) / 2
    else:  # radial: lit in the middle, darker towards the corners (a lamp, a vignette)
        t = np.hypot(xx - w / 2, yy - h / 2) / np.hypot(w / 2, h / 2)
    a, b = (np.array(c, dtype=np.float64) for c in pic.background)
    base = a + (b - a) * t[:, :, None]
    return base + rng.normal(0, 2.0, size=(1, 1, 3))  # a slight colour cast per shot


def render(pic: Picture) -> Image.Image:
    """The upright RGB picture: ink blended on the background, blurred, with sensor noise."""
    rng = np.random.default_rng(pic.seed)
    mask = ink_mask(STROKES[pic.digit], pic.size, pic.pen, pic.slant)
    ink = np.array(pic.ink, dtype=np.float64)
    rgb = background(pic, rng) * (1 - mask[:, :, None]) + ink * mask[:, :, None]
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    pen_px = pic.pen * min(0.7 * max(pic.size), 0.88 * pic.size[1])
    image = image.filter(ImageFilter.GaussianBlur(pic.blur * pen_px / 3))
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, pic.noise, (*image.size[::-1], 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def with_alpha(pic: Picture, rgb: Image.Image, mode: str) -> Image.Image:
    """The ink on a transparent background: what a drawing app exports."""
    mask = ink_mask(STROKES[pic.digit], pic.size, pic.pen, pic.slant)
    alpha = Image.fromarray((np.clip(mask * 1.15, 0, 1) * 255).astype(np.uint8))
    alpha = alpha.filter(ImageFilter.GaussianBlur(0.5))
    ink = Image.new("RGB", pic.size, pic.ink)
    out = ink.convert(mode[:-1])
    out.putalpha(alpha)
    return out


def save(pic: Picture, image: Image.Image, path: Path) -> None:
    name = pic.file
    exif = Image.Exif()
    if "exif_rot90" in name:
        # Orientation 6: a viewer turns the stored pixels 90 degrees clockwise to show
        # them; so the camera stored them turned 90 degrees anticlockwise.
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(path, quality=88, exif=exif.tobytes())
    elif "exif_rot270" in name:
        exif[0x0112] = 8
        image.transpose(Image.Transpose.ROTATE_270).save(path, quality=85, exif=exif.tobytes())
    elif name.endswith("_rgba.png"):
        with_alpha(pic, image, "RGBA").save(path)
    elif name.endswith("_la.png"):
        with_alpha(pic, image, "LA").save(path)
    elif "palette" in name:
        image.quantize(colors=16, method=Image.Quantize.MEDIANCUT).save(path)
    elif name.endswith(".gif"):
        # Two frames: the first is the digit, the second noise; readers must use the first.
        first = image.quantize(colors=64)
        rng = np.random.default_rng(pic.seed + 100)
        junk = Image.fromarray(rng.integers(0, 256, (*image.size[::-1], 3), dtype=np.uint8))
        first.save(path, save_all=True, append_images=[junk.quantize(colors=64)], duration=200)
    elif "gray16" in name:
        gray = np.asarray(image.convert("L"), dtype=np.float64) * 257
        fine = np.random.default_rng(pic.seed).normal(0, 60, gray.shape)  # below 8-bit steps
        Image.fromarray(np.clip(gray + fine, 0, 65535).astype(np.uint16)).save(path)
    elif "midgray" in name:
        image.convert("L").save(path)
    elif "cmyk" in name:
        image.convert("CMYK").save(path, quality=90)
    elif name.endswith("_rgba.webp"):
        # A sticker with rounded, transparent corners: WebP keeps alpha only when it varies.
        corners = Image.new("L", pic.size, 0)
        ImageDraw.Draw(corners).rounded_rectangle(
            (0, 0, pic.size[0] - 1, pic.size[1] - 1), radius=min(pic.size) // 8, fill=255
        )
        rgba = image.convert("RGBA")
        rgba.putalpha(corners)
        rgba.save(path, quality=90, exact=False)
    elif name.endswith(".webp"):
        image.save(path, quality=85)
    else:
        image.save(path)


def main() -> None:
    labels = {}
    for pic in PICTURES:
        save(pic, render(pic), HERE / pic.file)
        labels[pic.file] = pic.digit[0]
    (HERE / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    print(f"wrote {len(labels)} pictures and labels.json to {HERE}")


if __name__ == "__main__":
    main()
