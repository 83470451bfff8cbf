"""Which font files the printed digits may come from: fontconfig's, plus matplotlib's own.

Discovery asks fontconfig (``fc-list``) for every scalable TrueType/OpenType font on the
machine (Debian's ``fonts-*`` packages land there) and always adds the fonts matplotlib
ships, so a machine without fontconfig still has a pool. Whether a file's digits are
usable is decided later, by rendering them (:mod:`cnnlab.data.glyphs`).

Which fonts a model may train on and which it is tested on is decided by family
(:func:`split_families`): a seeded hash of the family's name puts it on one side, so the
split of one family never depends on which other fonts are installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from cnnlab.errors import ConfigError

# The share of font families held out for the printed-unseen test domain, and the seed of
# that split (change it and every family may land elsewhere).
UNSEEN_FRACTION = 0.25
SPLIT_SEED = 0

# fontconfig's names for the outline formats FreeType reads through Pillow.
_FORMATS = {"TrueType", "CFF"}
_SUFFIXES = {".ttf", ".otf", ".ttc"}

_log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class FontFile:
    """One face: a file, and its index within a collection (.ttc)."""

    path: Path
    index: int = 0

    @property
    def label(self) -> str:
        return self.path.name if self.index == 0 else f"{self.path.name}#{self.index}"


def matplotlib_fonts() -> list[FontFile]:
    """The TrueType fonts bundled with matplotlib: there on every machine cnnlab runs on."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(FontFile(p) for p in folder.glob("*.ttf"))


def fontconfig_fonts(fc_list: str | None = None) -> list[FontFile] | None:
    """Every scalable TrueType/CFF face fontconfig knows, or None without fontconfig."""
    command = fc_list or shutil.which("fc-list")
    if command is None:
        return None
    try:
        listing = subprocess.run(
            [command, "--format", "%{file}\t%{index}\t%{fontformat}\n", ":scalable=true"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _log.warning("fontconfig: fc-list failed (%s); using matplotlib's fonts only", exc)
        return None
    found = set()
    for line in listing.splitlines():
        path, _, rest = line.partition("\t")
        index, _, form = rest.partition("\t")
        if form in _FORMATS and Path(path).suffix.lower() in _SUFFIXES and index.isdigit():
            found.add(FontFile(Path(path), int(index)))
    return sorted(found)


def discover_fonts(fc_list: str | None = None) -> list[FontFile]:
    """fontconfig's faces and matplotlib's, each file once (by its name and size: matplotlib
    and Debian both ship DejaVu). ``$CNNLAB_FONTS=matplotlib`` keeps matplotlib's only:
    the same pool, so the same images, on every machine (and a fast one for tests)."""
    choice = os.environ.get("CNNLAB_FONTS", "all")
    if choice not in ("all", "matplotlib"):
        raise ConfigError(f"CNNLAB_FONTS={choice}: use all (the default) or matplotlib")
    system = fontconfig_fonts(fc_list) if choice == "all" else []
    faces = [*(system or []), *matplotlib_fonts()]
    seen: set[tuple[str, int, int]] = set()
    unique = []
    for face in faces:
        try:
            key = (face.path.name, face.index, face.path.stat().st_size)
        except OSError:
            continue  # listed by a stale fontconfig cache, gone since
        if key not in seen:
            seen.add(key)
            unique.append(face)
    return unique


def pool_key(faces: Iterable[FontFile]) -> list[tuple[str, int, int]]:
    """What identifies a pool for caching: each face's file name, index and size."""
    return sorted((f.path.name, f.index, f.path.stat().st_size) for f in faces)


def family_key(family: str) -> str:
    """The family a face belongs to for the split: its name without width/weight words,
    so "DejaVu Sans Condensed" and "DejaVu Sans Light" fall with "DejaVu Sans"."""
    words = [w for w in family.replace("-", " ").split() if w.lower() not in _STYLE_WORDS]
    return " ".join(words).lower() or family.lower()


_STYLE_WORDS = {
    "thin", "hairline", "extralight", "ultralight", "light", "book", "regular", "normal",
    "medium", "semibold", "demibold", "demi", "bold", "extrabold", "ultrabold", "heavy",
    "black", "italic", "oblique", "condensed", "semicondensed", "narrow", "compressed",
    "extended", "expanded", "wide", "display", "text", "caption", "subhead", "titling",
    "sc", "lt", "md", "bd", "cn",
}  # fmt: skip


# Handwriting-style families: never trained on, they make their own test domain
# (handwriting-fonts), which says how a model reads digits written by hands other than
# MNIST's 250 writers. Matched as the start of a family key; each one was looked at.
HANDWRITING_FAMILIES = (
    "because we", "comic neue", "dancing script", "dkghandwriting", "ecolier",
    "humor sans", "kaushan script", "kristi", "penguin attack", "rufscript", "steve",
    "tomson talks", "\u00e6nigma scrawl", "johnny mac scrawl", "mad's scrawl",
)  # fmt: skip


def is_handwriting(family: str) -> bool:
    """Whether a family is one of the handwriting-style ones (HANDWRITING_FAMILIES)."""
    return family_key(family).startswith(HANDWRITING_FAMILIES)


def is_unseen(group: str, seed: int = SPLIT_SEED, fraction: float = UNSEEN_FRACTION) -> bool:
    """Whether a family group is held out: a fixed hash of (seed, name), not a draw."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_families(groups: Iterable[str], seed: int = SPLIT_SEED) -> tuple[set[str], set[str]]:
    """(seen, unseen) family groups, disjoint; each side gets one when there are two."""
    ordered = sorted(set(groups))
    unseen = {g for g in ordered if is_unseen(g, seed)}
    if len(ordered) >= 2:
        ranked = sorted(ordered, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).digest())
        if not unseen:
            unseen = {ranked[0]}
        elif len(unseen) == len(ordered):
            unseen.discard(ranked[-1])
    return set(ordered) - unseen, unseen
