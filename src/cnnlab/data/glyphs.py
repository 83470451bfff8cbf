"""The glyph atlas: every usable font's digits 0-9, rendered once and cached on disk.

A font is kept when Pillow (FreeType) draws its ten digits as ten distinct, non-empty
glyphs that are not its "missing character" box, and when at least ``READ_AT_LEAST`` of
them look more like that digit than like any other in matplotlib's reference fonts
(nearest template by correlation), or at least one more than that against every face
that passed this first test: symbol, pictograph and non-Latin-digit fonts fail
that. Families whose digits are near copies of each other (Liberation Sans and Arimo,
the URW clones and TeX Gyre) form one group, so holding a family out of training holds
out its clones too.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

from cnnlab import heartbeat
from cnnlab.atomic import atomic_write, atomic_write_text
from cnnlab.data.cache import entry_folder
from cnnlab.data.fonts import FontFile, family_key, matplotlib_fonts, pool_key
from cnnlab.errors import ConfigError

# Bump when the glyphs or the checks change, so atlases cached by older code are not reused.
ATLAS_VERSION = 3
READ_AT_LEAST = 8  # of the ten digits must read as themselves
CLONE_SIMILARITY = 0.98  # mean correlation of the ten digits above which two faces are copies
REFERENCE_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
    "STIXGeneral.ttf", "cmr10.ttf", "cmss10.ttf",
)  # fmt: skip

_FONT_PX = 96  # glyph size when rendered: digits come out about 70 px tall
_REDUCE = 2  # box-filtered down by this much in the atlas
_TEMPLATE = 24  # side of the square a digit is compared in

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FontInfo:
    label: str  # file name, with #index inside a collection
    family: str
    style: str
    group: str  # the family group the seen/unseen split is made on


@dataclass(frozen=True)
class Atlas:
    """Glyph ``font * 10 + digit``, centred on its bounding box in an S x S cell."""

    masks: torch.Tensor  # uint8 (F * 10, 1, S, S), ink 0-255
    widths: np.ndarray  # (F * 10,) bounding-box width in atlas pixels
    heights: np.ndarray  # (F * 10,) the height the font's digits share (their median)
    fonts: tuple[FontInfo, ...]
    rejected: tuple[tuple[str, str], ...] = ()  # (label, why) of each face left out
    readable: np.ndarray | None = None  # (F, 10) bool: digits that read as themselves

    @property
    def cell(self) -> int:
        return self.masks.shape[-1]

    def subset(self, keep: list[int]) -> Atlas:
        """The atlas of the fonts at ``keep`` (indices into ``fonts``), in that order."""
        glyphs = torch.tensor([f * 10 + d for f in keep for d in range(10)], dtype=torch.long)
        index = glyphs.numpy()
        fonts = tuple(self.fonts[f] for f in keep)
        readable = None if self.readable is None else self.readable[keep]
        return Atlas(
            self.masks[glyphs], self.widths[index], self.heights[index], fonts, (), readable
        )

    def readable_fonts(self, digit: int) -> np.ndarray:
        """The fonts (indices) whose ``digit`` reads as itself (all without the check)."""
        if self.readable is None:
            return np.arange(len(self.fonts))
        return np.flatnonzero(self.readable[:, digit])


def load_atlas(faces: list[FontFile], cache_dir: Path | None = None) -> Atlas:
    """The atlas of ``faces``, from the cache when this pool was rendered before."""
    key = {
        "version": ATLAS_VERSION,
        "pool": pool_key(faces),
        "pillow": PIL.__version__,
        "freetype": features.version_module("freetype2"),
    }
    folder = entry_folder("glyphs", key, cache_dir)
    cached = _read(folder)
    if cached is not None:
        return cached
    heartbeat.doing(f"printed digits: checking {len(faces)} fonts (once, then cached)")
    atlas = build_atlas(faces)
    _write(folder, atlas)
    return atlas


@functools.cache
def _references() -> np.ndarray:
    """(R, 10, T*T) templates of matplotlib's plainest fonts."""
    folder = matplotlib_fonts()[0].path.parent
    rendered = [_digits(FontFile(folder / name)) for name in REFERENCE_FONTS]
    templates = [np.stack([_template(g) for g in r]) for r in rendered if isinstance(r, list)]
    if not templates:
        raise ConfigError(
            f"printed digits: matplotlib's fonts in {folder} do not render; reinstall "
            "matplotlib (pip install --force-reinstall matplotlib)"
        )
    return np.stack(templates)


def build_atlas(faces: list[FontFile]) -> Atlas:
    rendered: list[tuple[FontFile, list[np.ndarray]]] = []
    rejected: list[tuple[str, str]] = []
    for face in faces:
        digits = _digits(face)
        if isinstance(digits, str):
            rejected.append((face.label, digits))
        else:
            rendered.append((face, digits))
    if not rendered:
        raise ConfigError(
            "printed digits: no font renders the digits 0-9; install fonts (e.g. apt-get "
            "install fonts-dejavu) or reinstall matplotlib"
        )
    templates = np.stack([np.stack([_template(g) for g in digits]) for _, digits in rendered])
    # Two passes: against matplotlib's plain fonts, then against every font the first pass
    # kept (bold, italic, rounded, handwriting...), so an unusual but readable design finds
    # its like. Only two: each further pass would let the unusual vouch for the odd.
    references = _references()
    plain = _reads(templates, references, np.full(len(references), -1))
    first = plain.sum(1) >= READ_AT_LEAST
    # The second pass asks for one digit more: a face only its like can vouch for must
    # be a clear case.
    like = _reads(templates, templates[first], np.flatnonzero(first))
    kept_ones = first | (like.sum(1) >= READ_AT_LEAST + 1)
    readable = plain | like  # per digit: a kept face's odd digit is never drawn
    kept = []
    for i, (face, digits) in enumerate(rendered):
        if not kept_ones[i]:
            hits = max(plain[i].sum(), like[i].sum())
            rejected.append((face.label, f"its digits do not read as 0-9 ({hits} of 10 do)"))
        else:
            family, style = _names(face)
            kept.append((i, FontInfo(face.label, family, style, family_key(family)), digits))
    groups = _clone_groups([k[1] for k in kept], templates[[k[0] for k in kept]])
    fonts = tuple(
        FontInfo(info.label, info.family, info.style, group)
        for (_, info, _), group in zip(kept, groups, strict=True)
    )
    atlas = _pack([k[2] for k in kept], fonts, tuple(rejected))
    return replace(atlas, readable=readable[[k[0] for k in kept]])


def _reads(templates: np.ndarray, bank: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """(F, 10): whether each font's digit is nearest (by correlation) to a template of the
    same digit in ``bank`` (B, 10, D), leaving out the font's own (``owners``)."""
    flat = bank.reshape(-1, bank.shape[-1]).astype(np.float32)
    digit_of = np.tile(np.arange(10), len(bank))
    owner_of = np.repeat(owners, 10)
    reads = np.zeros((len(templates), 10), bool)
    for start in range(0, len(templates), 64):  # (64, 10, B*10) floats at a time
        part = templates[start : start + 64].astype(np.float32)
        similarity = part @ flat.T
        own = owner_of[None, :] == np.arange(start, start + len(part))[:, None]
        similarity[np.broadcast_to(own[:, None, :], similarity.shape)] = -np.inf
        reads[start : start + len(part)] = digit_of[similarity.argmax(2)] == np.arange(10)
    return reads


def _clone_groups(fonts: list[FontInfo], templates: np.ndarray) -> list[str]:
    """Each font's group: its family key, merged (union-find) with the keys of families
    holding a near copy of one of its faces; named by the group's first key."""
    parent = {f.group: f.group for f in fonts}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    flat = templates.reshape(len(fonts), 10, -1)
    similarity = np.einsum("adk,bdk->ab", flat, flat) / 10
    for a, b in zip(*np.nonzero(np.triu(similarity > CLONE_SIMILARITY, 1)), strict=True):
        ra, rb = root(fonts[a].group), root(fonts[b].group)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [root(f.group) for f in fonts]


def _digits(face: FontFile) -> list[np.ndarray] | str:
    """Tight-cropped masks of 0-9, or why the face cannot give them."""
    try:
        # The basic layout engine: no dependence on whether libraqm is installed.
        font = ImageFont.truetype(
            str(face.path), _FONT_PX, index=face.index, layout_engine=ImageFont.Layout.BASIC
        )
    except OSError as exc:
        return f"unreadable ({exc})"
    missing = _draw(font, "\uffff")  # a code point no font maps: its "missing" glyph
    digits = [_draw(font, str(d)) for d in range(10)]
    if any(m is None for m in digits):
        return "some digits are empty"
    masks = [m for m in digits if m is not None]
    if np.median([m.shape[0] for m in masks]) < _FONT_PX / 4:
        return "its digits are too small to read (a symbol or dot font)"
    if len({m.tobytes() + bytes(str(m.shape), "ascii") for m in masks}) < 10:
        return "two digits are the same glyph"
    if missing is not None and any(np.array_equal(m, missing) for m in masks):
        return "it has no digits (its missing-character box)"
    return masks


def _draw(font: ImageFont.FreeTypeFont, text: str) -> np.ndarray | None:
    canvas = Image.new("L", (3 * _FONT_PX, 3 * _FONT_PX))
    ImageDraw.Draw(canvas).text((_FONT_PX, _FONT_PX), text, font=font, fill=255)
    pixels = np.asarray(canvas)
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    if len(rows) == 0:
        return None
    return pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()


def _template(glyph: np.ndarray) -> np.ndarray:
    """The glyph in a T x T square, aspect kept, blurred a little (so stroke weight and
    small offsets matter less), as a zero-mean unit vector."""
    h, w = glyph.shape
    side = max(h, w)
    square = np.zeros((side, side), np.uint8)
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = glyph
    small = Image.fromarray(square).resize((_TEMPLATE, _TEMPLATE), Image.BOX)
    small = np.asarray(small.filter(ImageFilter.GaussianBlur(1.0)))
    vector = small.astype(np.float64).ravel()
    vector -= vector.mean()
    return vector / max(np.linalg.norm(vector), 1e-9)


def _names(face: FontFile) -> tuple[str, str]:
    font = ImageFont.truetype(str(face.path), 12, index=face.index)
    family, style = font.getname()
    return family or face.path.stem, style or "Regular"


def _pack(rendered: list[list[np.ndarray]], fonts: tuple[FontInfo, ...], rejected: tuple) -> Atlas:
    glyphs = [g for digits in rendered for g in digits]
    r = _REDUCE
    cell = 4 * r * -(-(max(max(g.shape) for g in glyphs) + 4) // (4 * r))
    masks = np.zeros((len(glyphs), cell // r, cell // r), np.uint8)
    for i, glyph in enumerate(glyphs):
        h, w = glyph.shape
        full = np.zeros((cell, cell), np.float32)
        top, left = (cell - h) // 2, (cell - w) // 2
        full[top : top + h, left : left + w] = glyph
        masks[i] = np.round(full.reshape(cell // r, r, cell // r, r).mean((1, 3)))
    widths = np.array([g.shape[1] for g in glyphs], np.float64) / r
    heights = np.array([g.shape[0] for g in glyphs], np.float64).reshape(-1, 10) / r
    shared = np.repeat(np.median(heights, axis=1), 10)
    return Atlas(torch.from_numpy(masks[:, None]), widths, shared, fonts, rejected)


def _read(folder: Path) -> Atlas | None:
    if not (folder / "fonts.json").exists():
        return None
    try:
        with np.load(folder / "atlas.npz") as arrays:
            masks, widths, heights = arrays["masks"], arrays["widths"], arrays["heights"]
            readable = arrays["readable"]
        meta = json.loads((folder / "fonts.json").read_text())
        fonts = tuple(FontInfo(**f) for f in meta["fonts"])
        rejected = tuple((label, why) for label, why in meta["rejected"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("printed digits: ignoring unreadable atlas %s (%s)", folder, exc)
        return None
    return Atlas(torch.from_numpy(masks), widths, heights, fonts, rejected, readable)


def _write(folder: Path, atlas: Atlas) -> None:
    try:
        (folder / "fonts.json").unlink(missing_ok=True)
        atomic_write(
            folder / "atlas.npz",
            lambda f: np.savez(
                f,
                masks=atlas.masks.numpy(),
                widths=atlas.widths,
                heights=atlas.heights,
                readable=atlas.readable,
            ),
        )
        meta = {"fonts": [vars(f) for f in atlas.fonts], "rejected": list(atlas.rejected)}
        atomic_write_text(folder / "fonts.json", json.dumps(meta, indent=1))
    except OSError as exc:
        _log.warning("printed digits: could not cache the atlas in %s (%s)", folder, exc)
