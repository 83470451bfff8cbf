"""Figure styles: a face's lining and old-style figures, each drawn at its own size and place
on the line; the font check keeps old-style and handwriting faces and still refuses symbol
fonts; the pool's sides (seen, unseen lining, unseen old-style, handwriting) are disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import figure_styles as figures
from cnnlab.data import font_pool, fonts, glyphs, printed

# Debian packages of scripts/font-packages.txt (scripts/setup.sh installs them).
BOTH_STYLES = "LinLibertine_R.otf"  # fonts-linuxlibertine: lining by default, onum too
OLD_STYLE_ONLY = "IrianisADFStd-Regular.otf"  # fonts-adf-irianis
HANDWRITING = "dkg.ttf"  # fonts-dkg-handwriting: its digits do not correlate with type
SYMBOLS = ("elusiveicons-webfont.ttf",)  # fonts-elusive-icons: pictographs on the digits
PLAIN = ("DejaVuSans.ttf", "cmr10.ttf")


def system_face(name: str) -> fonts.FontFile:
    found = [f for f in fonts.fontconfig_fonts() or [] if f.path.name == name]
    if not found:
        pytest.skip(f"{name} is not installed (bash scripts/setup.sh installs it)")
    return found[0]


def mpl_face(name: str) -> fonts.FontFile:
    return next(f for f in fonts.matplotlib_fonts() if f.path.name == name)


def ink_rows(ink: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((ink > 0.5).any(1))
    return int(rows[0]), int(rows[-1])


def test_a_face_with_both_styles_gives_both_and_the_old_style_figures_keep_their_places() -> None:
    sets = figures.figure_sets(system_face(BOTH_STYLES))
    assert not isinstance(sets, str)
    lining, old = sets
    assert (lining.figures, old.figures) == (figures.LINING, figures.OLD_STYLE)
    # Lining: every figure as tall as the 8, on the baseline.
    assert lining.heights[0] > 0.95 * lining.heights[8]
    assert abs(lining.tops[7] + lining.heights[7]) < 0.03 * lining.heights[8]
    # Old-style: the 0 as small as an o, on the baseline; the 7 hangs below it.
    assert old.heights[0] < 0.8 * old.heights[8]
    assert abs(old.tops[0] + old.heights[0]) < 0.03 * old.heights[8]
    assert old.tops[7] + old.heights[7] > 0.15 * old.heights[8]
    assert old.drops()[7] > old.drops()[0] > old.drops()[8]


def test_the_renderer_draws_old_style_digits_at_their_size_and_baseline() -> None:
    atlas = glyphs.build_atlas([system_face(BOTH_STYLES), *map(mpl_face, PLAIN)])
    entry = {f.figures: i for i, f in enumerate(atlas.fonts) if f.label == BOTH_STYLES}
    rows = {}
    for style, index in entry.items():
        glyph = np.array([10 * index + d for d in (0, 7, 8)])
        one, zero = np.ones(3), np.zeros(3)
        # The renderer's own map, at the atlas's scale, unmoved: only the place on the line.
        inverse = printed._inverse_maps(
            one, one, zero, zero, np.zeros((3, 2)), np.zeros((3, 2)), atlas.drops[glyph]
        )
        ink = printed._ink(atlas, glyph, inverse, atlas.cell).numpy()[:, 0]
        for digit, image in zip((0, 7, 8), ink, strict=True):
            rows[style, digit] = ink_rows(image)
    height = {key: bottom - top for key, (top, bottom) in rows.items()}
    old, lining = figures.OLD_STYLE, figures.LINING
    assert height[old, 0] < 0.8 * height[old, 8]  # small, not stretched to the line
    assert height[lining, 0] > 0.95 * height[lining, 8]
    assert rows[old, 7][1] > rows[old, 0][1] + 0.15 * height[old, 8]  # the 7 hangs below
    assert abs(rows[old, 0][1] - rows[old, 8][1]) <= 2  # 0 and 8 share the baseline
    assert abs(rows[lining, 7][1] - rows[lining, 0][1]) <= 2
    # The whole image pipeline draws the old-style set too (a cut-off neighbour included).
    digits = printed.render_printed_digits(20, seed=3, atlas=atlas.subset([entry[old]]))
    assert digits.images.shape == (20, 3, 32, 32) and digits.images.std() > 10


def test_the_check_keeps_old_style_and_handwriting_faces_and_refuses_symbol_fonts() -> None:
    faces = [*map(mpl_face, PLAIN), system_face(BOTH_STYLES), system_face(OLD_STYLE_ONLY)]
    faces += [system_face(HANDWRITING), *map(system_face, SYMBOLS)]
    atlas = glyphs.build_atlas(faces)
    kept = {(f.label, f.figures) for f in atlas.fonts}
    assert {(BOTH_STYLES, "lining"), (BOTH_STYLES, "old-style")} <= kept
    assert (OLD_STYLE_ONLY, "old-style") in kept
    assert any(label == HANDWRITING for label, _ in kept)
    rejected = dict(atlas.rejected)
    assert set(SYMBOLS) <= set(rejected)
    # A kept face's old-style digits read as the digits its lining ones read as.
    rows = [i for i, f in enumerate(atlas.fonts) if f.label == BOTH_STYLES]
    assert atlas.readable is not None and atlas.readable[rows].all()
    hand = [i for i, f in enumerate(atlas.fonts) if f.label == HANDWRITING]
    assert atlas.readable[hand].all()


# Families from both sides of the split and both figure styles: Solothurn, Essays1743 and
# Vollkorn fall on the unseen side (old-style), EB Garamond and Linux Libertine on the
# seen one (both styles); dkg and Comic Neue are handwriting.
POOL_FILES = ("Solothurn", "Essays1743", "Vollkorn", "EBGaramond", "LinLibertine", "dkg",
              "ComicNeue", "DejaVuSans", "DejaVuSerif", "Lato")  # fmt: skip


def test_the_pool_sides_are_disjoint_and_each_has_its_own_figures(monkeypatch) -> None:
    monkeypatch.setenv("CNNLAB_FONTS", "all")
    faces = [f for f in fonts.discover_fonts() if f.path.name.startswith(POOL_FILES)]
    if not any(f.path.name == BOTH_STYLES for f in faces):
        pytest.skip("the Debian font packages are not installed (bash scripts/setup.sh)")
    pool = font_pool.load_pool(faces)
    sides = [set(getattr(pool, side)) for side in font_pool.SIDE_DOMAINS]
    assert sum(map(len, sides)) == len(pool.atlas.fonts) == len(set().union(*sides))
    group = [f.group for f in pool.atlas.fonts]
    seen, unseen, oldstyle, hand = ({group[i] for i in side} for side in sides)
    assert seen.isdisjoint(unseen | oldstyle | hand) and hand.isdisjoint(unseen | oldstyle)
    assert oldstyle <= {f.group for f in pool.atlas.fonts if f.group not in seen | hand}
    info = pool.atlas.fonts
    assert {info[i].figures for i in pool.unseen} == {figures.LINING}
    assert {info[i].figures for i in pool.oldstyle} == {figures.OLD_STYLE}
    assert {info[i].figures for i in pool.seen} == {figures.LINING, figures.OLD_STYLE}
    assert all(fonts.is_handwriting(info[i].family) for i in pool.handwriting)
    assert len(pool.oldstyle) and len(pool.handwriting)
    assert font_pool.load_pool(faces) is pool  # one check per process
