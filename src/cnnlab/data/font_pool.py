"""The font pool of the printed digits: this machine's checked fonts, split into sides.

The fonts are every scalable font fontconfig finds plus matplotlib's own
(:mod:`cnnlab.data.fonts`), each checked by rendering its digits (:mod:`cnnlab.data.glyphs`,
which caches the glyph atlas). Handwriting-style families are set apart; the rest are
split once, by a seeded hash of their names, into *seen* families (training and the
``printed`` test domain) and *unseen* ones, whose lining figures make ``printed-unseen``
and whose old-style figures make ``printed-oldstyle``: a model is judged on typefaces it
never trained on, in both figure styles.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data.figure_styles import LINING, OLD_STYLE
from cnnlab.data.fonts import FontFile, discover_fonts, is_handwriting, split_families
from cnnlab.data.glyphs import Atlas, load_atlas
from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class FontPool:
    """The checked fonts of this machine and their split into seen and unseen families:
    training draws both figure styles of the seen ones, the unseen ones test the lining
    and the old-style figures apart."""

    atlas: Atlas
    seen: list[int]  # indices into atlas.fonts, both figure styles
    unseen: list[int]  # lining figures of the unseen families
    oldstyle: list[int]  # old-style figures of the unseen families; may be empty
    handwriting: list[int]  # the handwriting-style families, never seen; may be empty

    def side(self, name: str) -> Atlas:
        return self.atlas.subset(getattr(self, name))


def pool_faces() -> list[FontFile]:
    """This machine's font files (asked of fontconfig once per process and $CNNLAB_FONTS)."""
    return _faces(os.environ.get("CNNLAB_FONTS", "all"))


@functools.cache
def _faces(choice: str) -> list[FontFile]:
    return discover_fonts()  # reads the same $CNNLAB_FONTS; ``choice`` keys the cache


def pool_summary() -> str:
    """What the printed digits are drawn from, without checking any font (cheap)."""
    return (
        f"{len(pool_faces())} font files (fontconfig and matplotlib), families split into "
        "seen (train, printed) and unseen (printed-unseen, printed-oldstyle) by a seeded "
        "hash, handwriting-style ones apart (handwriting-fonts)"
    )


def font_rows(pool: FontPool) -> list[dict[str, str]]:
    """One row per face: kept ones with their family group and side, then the left out."""
    side = {i: name for name in SIDE_DOMAINS for i in getattr(pool, name)}
    rows = [
        {"font": f.label, "family": f.family, "style": f.style, "group": f.group,
         "figures": f.figures, "side": side[i]}
        for i, f in enumerate(pool.atlas.fonts)
    ]  # fmt: skip
    rows += [
        {"font": label, "family": "", "style": "", "group": "", "figures": "",
         "side": f"left out: {why}"}
        for label, why in pool.atlas.rejected
    ]  # fmt: skip
    return rows


# Each side of the pool, and the test domain it makes ("seen" trains and makes "printed").
SIDE_DOMAINS = {"seen": "printed", "unseen": "printed-unseen", "oldstyle": "printed-oldstyle",
          "handwriting": "handwriting-fonts"}  # fmt: skip


def load_pool(faces: list[FontFile] | None = None, cache_dir: Path | None = None) -> FontPool:
    """Check (or read from the cache) every face, then split the families."""
    return _pool(tuple(pool_faces() if faces is None else faces), cache_dir)


@functools.lru_cache(maxsize=2)
def _pool(faces: tuple[FontFile, ...], cache_dir: Path | None) -> FontPool:
    atlas = load_atlas(list(faces), cache_dir)
    hands = {f.group for f in atlas.fonts if is_handwriting(f.family)}
    seen_groups, unseen_groups = split_families(
        f.group for f in atlas.fonts if f.group not in hands
    )
    seen = [i for i, f in enumerate(atlas.fonts) if f.group in seen_groups]
    unseen, oldstyle = ([
        i for i, f in enumerate(atlas.fonts) if f.group in unseen_groups and f.figures == style
    ] for style in (LINING, OLD_STYLE))  # fmt: skip
    handwriting = [i for i, f in enumerate(atlas.fonts) if f.group in hands]
    if not seen or not unseen:
        raise ConfigError(
            f"printed digits: the {len(atlas.fonts)} usable fonts form one family only, so "
            "none is left to test on unseen fonts; install more fonts (e.g. apt-get install "
            "fonts-liberation fonts-freefont-ttf)"
        )
    return FontPool(atlas, seen, unseen, oldstyle, handwriting)


def side_counts(pool: FontPool) -> list[tuple[str, str, int, int]]:
    """(side, its test domain, figure sets, family groups) for each side of the pool."""
    return [
        (side, domain, len(getattr(pool, side)),
         len({pool.atlas.fonts[i].group for i in getattr(pool, side)}))
        for side, domain in SIDE_DOMAINS.items()
    ]  # fmt: skip
