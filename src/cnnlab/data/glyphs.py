"""The glyph atlas: every usable font's digits 0-9, rendered once and cached on disk.

Each face gives one entry per figure style it has (lining, old-style:
:mod:`cnnlab.data.figure_styles`). A face is kept when Pillow (FreeType) draws its ten
digits as ten distinct, non-empty glyphs that are not its "missing character" box, and when at
least ``READ_AT_LEAST`` of one of its sets look more like that digit than like any other
in matplotlib's reference fonts (nearest template by correlation), or at least one more
than that against every set that passed this first test (old-style sets included, so an
old-style-only face finds its like): symbol, pictograph and non-Latin-digit fonts fail
that. A kept face's other figure style is kept with it: the font maps the same digits
to it (the ``onum``/``lnum`` substitution), so its old-style 1 that looks like a small
capital I is still a 1. Families whose digits are near copies of each other (Liberation
Sans and Arimo, the URW clones and TeX Gyre) form one group, so holding a family out of
training holds out its clones too.
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
from PIL import Image, ImageFilter, ImageFont, features

from cnnlab import heartbeat
from cnnlab.atomic import atomic_write, atomic_write_text
from cnnlab.data.cache import entry_folder
from cnnlab.data.figure_styles import LINING, FigureSet, figure_sets
from cnnlab.data.fonts import FontFile, family_key, is_handwriting, matplotlib_fonts, pool_key
from cnnlab.errors import ConfigError

# Bump when the glyphs or the checks change, so atlases cached by older code are not reused.
ATLAS_VERSION = 5
READ_AT_LEAST = 8  # of the ten digits must read as themselves
CLONE_SIMILARITY = 0.98  # mean correlation of the ten digits above which two faces are copies
REFERENCE_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
    "STIXGeneral.ttf", "cmr10.ttf", "cmss10.ttf",
)  # fmt: skip

_REDUCE = 2  # box-filtered down by this much in the atlas
_TEMPLATE = 24  # side of the square a digit is compared in

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FontInfo:
    label: str  # file name, with #index inside a collection
    family: str
    style: str
    group: str  # the family group the seen/unseen split is made on
    figures: str = LINING  # the figure style of this entry: lining or old-style


@dataclass(frozen=True)
class Atlas:
    """Glyph ``entry * 10 + digit``, centred on its bounding box in an S x S cell; an entry
    is one figure style of one face."""

    masks: torch.Tensor  # uint8 (F * 10, 1, S, S), ink 0-255
    widths: np.ndarray  # (F * 10,) bounding-box width in atlas pixels
    heights: np.ndarray  # (F * 10,) the height of the band the entry's figures span
    drops: np.ndarray  # (F * 10,) the glyph's centre below the band's centre, atlas pixels
    fonts: tuple[FontInfo, ...]
    rejected: tuple[tuple[str, str], ...] = ()  # (label, why) of each face left out
    readable: np.ndarray | None = None  # (F, 10) bool: digits that read as themselves

    @property
    def cell(self) -> int:
        return self.masks.shape[-1]

    def subset(self, keep: list[int]) -> Atlas:
        """The atlas of the entries at ``keep`` (indices into ``fonts``), in that order."""
        glyphs = torch.tensor([f * 10 + d for f in keep for d in range(10)], dtype=torch.long)
        index = glyphs.numpy()
        fonts = tuple(self.fonts[f] for f in keep)
        readable = None if self.readable is None else self.readable[keep]
        return Atlas(
            self.masks[glyphs],
            self.widths[index],
            self.heights[index],
            self.drops[index],
            fonts,
            (),
            readable,
        )

    def readable_fonts(self, digit: int) -> np.ndarray:
        """The entries (indices) whose ``digit`` reads as itself (all without the check)."""
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
        "raqm": features.version_feature("raqm"),  # without it, default figures only
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
    """(R, 10, T*T) templates of matplotlib's plainest fonts (their default figures)."""
    folder = matplotlib_fonts()[0].path.parent
    rendered = [figure_sets(FontFile(folder / name)) for name in REFERENCE_FONTS]
    templates = [
        np.stack([_template(g) for g in sets[0].masks])
        for sets in rendered
        if not isinstance(sets, str)
    ]
    if not templates:
        raise ConfigError(
            f"printed digits: matplotlib's fonts in {folder} do not render; reinstall "
            "matplotlib (pip install --force-reinstall matplotlib)"
        )
    return np.stack(templates)


def build_atlas(faces: list[FontFile]) -> Atlas:
    entries: list[tuple[int, FigureSet]] = []  # (face index, one of its figure sets)
    rejected: list[tuple[str, str]] = []
    for i, face in enumerate(faces):
        sets = figure_sets(face)
        if isinstance(sets, str):
            rejected.append((face.label, sets))
        else:
            entries += [(i, s) for s in sets]
    if not entries:
        raise ConfigError(
            "printed digits: no font renders the digits 0-9; install fonts (e.g. apt-get "
            "install fonts-dejavu) or reinstall matplotlib"
        )
    owner = np.array([face for face, _ in entries])
    names = {face: _names(faces[face]) for face in dict.fromkeys(owner.tolist())}
    handwriting = np.array([is_handwriting(names[face][0]) for face in owner])
    templates = np.stack([np.stack([_template(g) for g in s.masks]) for _, s in entries])
    kept_faces, readable, hits = _check(templates, owner, handwriting)
    kept = []
    for face, (family, style) in names.items():
        if face not in kept_faces:
            why = f"its digits do not read as 0-9 ({hits[owner == face].max()} of 10 do)"
            rejected.append((faces[face].label, why))
            continue
        for e in np.flatnonzero(owner == face):
            info = FontInfo(faces[face].label, family, style, family_key(family))
            kept.append((e, replace(info, figures=entries[e][1].figures)))
    order = [e for e, _ in kept]
    groups = _clone_groups([info for _, info in kept], templates[order])
    fonts = tuple(replace(info, group=g) for (_, info), g in zip(kept, groups, strict=True))
    atlas = _pack([entries[e][1] for e in order], fonts, tuple(rejected))
    return replace(atlas, readable=readable[order])


def _check(
    templates: np.ndarray, owner: np.ndarray, handwriting: np.ndarray
) -> tuple[set[int], np.ndarray, np.ndarray]:
    """Which faces are kept, which digits of each entry read (a face's entries vouch for
    one another: the same code points), and each entry's count of digits that read. The
    handwriting families were each looked at: a hand's digits do not correlate with type,
    so they are kept whole."""
    # Two passes: against matplotlib's plain fonts, then against every set the first pass
    # kept (bold, italic, rounded, old-style, handwriting...), so an unusual but readable
    # design finds its like. Only two: each further pass would let the unusual vouch for
    # the odd.
    references = _references()
    plain = _reads(templates, references, np.full(len(references), -1), owner)
    first = plain.sum(1) >= READ_AT_LEAST
    # The second pass asks for one digit more: a face only its like can vouch for must
    # be a clear case. A face's own sets never vouch for it.
    like = _reads(templates, templates[first], owner[first], owner)
    passed = first | (like.sum(1) >= READ_AT_LEAST + 1) | handwriting
    own = plain | like | handwriting[:, None]  # a kept face's odd digit is never drawn
    readable = np.zeros_like(own)
    for face in np.unique(owner[passed]):
        mine = owner == face
        readable[mine] = own[mine] | own[mine & passed].any(0)
    hits = np.maximum(plain.sum(1), like.sum(1))
    return set(owner[passed].tolist()), readable, hits


def _reads(
    templates: np.ndarray, bank: np.ndarray, bank_owners: np.ndarray, owners: np.ndarray
) -> np.ndarray:
    """(E, 10): whether each entry's digit is nearest (by correlation) to a template of the
    same digit in ``bank`` (B, 10, D), leaving out the bank's entries of the same face
    (``bank_owners`` and ``owners`` name each one's face; -1 is no face)."""
    flat = bank.reshape(-1, bank.shape[-1]).astype(np.float32)
    digit_of = np.tile(np.arange(10), len(bank))
    owner_of = np.repeat(bank_owners, 10)
    reads = np.zeros((len(templates), 10), bool)
    for start in range(0, len(templates), 64):  # (64, 10, B*10) floats at a time
        part = templates[start : start + 64].astype(np.float32)
        similarity = part @ flat.T
        own = owner_of[None, :] == owners[start : start + len(part), None]
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


def _pack(sets: list[FigureSet], fonts: tuple[FontInfo, ...], rejected: tuple) -> Atlas:
    glyphs = [g for figures in sets for g in figures.masks]
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
    bands = np.repeat([s.line[1] - s.line[0] for s in sets], 10).astype(np.float64) / r
    drops = np.concatenate([s.drops() for s in sets]) / r
    return Atlas(torch.from_numpy(masks[:, None]), widths, bands, drops, fonts, rejected)


def _read(folder: Path) -> Atlas | None:
    if not (folder / "fonts.json").exists():
        return None
    try:
        with np.load(folder / "atlas.npz") as arrays:
            masks, widths, heights = arrays["masks"], arrays["widths"], arrays["heights"]
            drops, readable = arrays["drops"], arrays["readable"]
        meta = json.loads((folder / "fonts.json").read_text())
        fonts = tuple(FontInfo(**f) for f in meta["fonts"])
        rejected = tuple((label, why) for label, why in meta["rejected"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("printed digits: ignoring unreadable atlas %s (%s)", folder, exc)
        return None
    return Atlas(torch.from_numpy(masks), widths, heights, drops, fonts, rejected, readable)


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
                drops=atlas.drops,
                readable=atlas.readable,
            ),
        )
        meta = {"fonts": [vars(f) for f in atlas.fonts], "rejected": list(atlas.rejected)}
        atomic_write_text(folder / "fonts.json", json.dumps(meta, indent=1))
    except OSError as exc:
        _log.warning("printed digits: could not cache the atlas in %s (%s)", folder, exc)
