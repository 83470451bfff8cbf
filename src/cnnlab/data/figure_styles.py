"""A face's figures 0-9 as the face draws them: lining and old-style, each on its own line.

Many book faces print old-style (text) figures by default: 0 1 2 as small as an ``o``,
3 4 5 7 9 hanging below the baseline, 6 8 rising above the x-height. OpenType faces that
carry both styles switch between them with the ``lnum`` and ``onum`` features, which
Pillow applies through its raqm layout. Each style a face has becomes one
:class:`FigureSet`, and each digit keeps where it sits on the line (its top relative to
the baseline), so a renderer can draw an old-style 0 small and a 7 descending.

``tnum``/``pnum`` (tabular or proportional spacing) change a figure's advance, which a
single-digit crop does not show, so they are not asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from cnnlab.data.fonts import FontFile

LINING = "lining"
OLD_STYLE = "old-style"
FONT_PX = 96  # glyph size when rendered: lining digits come out about 70 px tall

# Old-style when the 0 is this much shorter than the 6 and 8 and at least two of 3 4 5 7 9
# hang below the baseline by this share of the 8's height (lining figures overshoot the
# baseline by 1-3%).
_SMALL_ZERO = 0.9
_DESCENT = 0.08
_DESCENDERS = (3, 4, 5, 7, 9)
# The features asked for each style (raqm only); the default glyphs come first.
_FEATURES = {LINING: ["lnum"], OLD_STYLE: ["onum"]}


@dataclass(frozen=True)
class FigureSet:
    """The ten digits of one figure style of a face."""

    figures: str  # LINING or OLD_STYLE
    masks: tuple[np.ndarray, ...]  # tight crops of 0..9, ink 0-255
    tops: np.ndarray  # (10,) each crop's top row relative to the baseline (< 0: above it)

    @property
    def heights(self) -> np.ndarray:
        return np.array([m.shape[0] for m in self.masks], np.float64)

    @property
    def line(self) -> tuple[float, float]:
        """(top, bottom) of the band all ten figures occupy, relative to the baseline."""
        return float(self.tops.min()), float((self.tops + self.heights).max())

    def drops(self) -> np.ndarray:
        """(10,) how far each glyph's centre lies below the centre of the figures' band."""
        top, bottom = self.line
        return self.tops + self.heights / 2 - (top + bottom) / 2


def has_layout_features() -> bool:
    """Whether Pillow can apply OpenType features here (its raqm layout is available)."""
    return bool(features.check("raqm"))


def figure_style(masks: tuple[np.ndarray, ...], tops: np.ndarray) -> str:
    """LINING or OLD_STYLE, judged by the glyphs' sizes and their places on the line."""
    heights = np.array([m.shape[0] for m in masks], np.float64)
    tall = max(heights[6], heights[8])
    bottoms = tops + heights
    hanging = sum(bottoms[d] > _DESCENT * heights[8] for d in _DESCENDERS)
    return OLD_STYLE if heights[0] < _SMALL_ZERO * tall and hanging >= 2 else LINING


def figure_sets(face: FontFile) -> list[FigureSet] | str:
    """The face's figure sets (its default first, at most one per style), or why the face
    cannot give its digits."""
    layout = ImageFont.Layout.RAQM if has_layout_features() else ImageFont.Layout.BASIC
    try:
        font = ImageFont.truetype(str(face.path), FONT_PX, index=face.index, layout_engine=layout)
    except OSError as exc:
        return f"unreadable ({exc})"
    default = _figures(font, None)
    if isinstance(default, str):
        return default
    sets = [default]
    if layout == ImageFont.Layout.RAQM:
        for style, wanted in _FEATURES.items():
            other = _figures(font, wanted)
            if (
                not isinstance(other, str)
                and other.figures == style
                and all(other.figures != s.figures for s in sets)
            ):
                sets.append(other)
    return sets


def _figures(font: ImageFont.FreeTypeFont, wanted: list[str] | None) -> FigureSet | str:
    missing = draw_glyph(font, "\uffff", wanted)  # a code point no font maps: its box
    drawn = [draw_glyph(font, str(d), wanted) for d in range(10)]
    if any(d is None for d in drawn):
        return "some digits are empty"
    masks = tuple(d[0] for d in drawn if d is not None)
    tops = np.array([d[1] for d in drawn if d is not None], np.float64)
    if np.median([m.shape[0] for m in masks]) < FONT_PX / 4:
        return "its digits are too small to read (a symbol or dot font)"
    if len({m.tobytes() + bytes(str(m.shape), "ascii") for m in masks}) < 10:
        return "two digits are the same glyph"
    if missing is not None and any(np.array_equal(m, missing[0]) for m in masks):
        return "it has no digits (its missing-character box)"
    return FigureSet(figure_style(masks, tops), masks, tops)


def draw_glyph(
    font: ImageFont.FreeTypeFont, text: str, wanted: list[str] | None = None
) -> tuple[np.ndarray, int] | None:
    """The tight crop of ``text`` and its top row relative to the baseline, or None when
    nothing is drawn."""
    canvas = Image.new("L", (3 * FONT_PX, 3 * FONT_PX))
    baseline = 2 * FONT_PX
    draw = ImageDraw.Draw(canvas)
    draw.text((FONT_PX, baseline), text, font=font, fill=255, anchor="ls", features=wanted)
    pixels = np.asarray(canvas)
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    if len(rows) == 0:
        return None
    crop = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    return crop, int(rows[0]) - baseline
