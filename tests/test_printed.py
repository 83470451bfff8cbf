"""Printed digits: font discovery with and without fontconfig, the checks that keep a font,
the seen/unseen family split, every rendering effect, and the cache keyed by the pool."""

from __future__ import annotations

import csv
import logging
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_mnist_like

from cnnlab.cli import main
from cnnlab.data import fonts, glyphs, printed
from cnnlab.data.augment import luminance
from cnnlab.data.printed_style import BASIC, EFFECTS, FULL, LOW_CONTRAST, MIN_CONTRAST, Style
from cnnlab.errors import ConfigError

MPL = fonts.matplotlib_fonts()


NONE = Style(
    "none", shear=0, stretch=0, rotate=0, weight=0, neighbour=0, gradient=0, noise=0, blur=0
)


def fake_fc_list(tmp_path: Path, lines: list[str], code: int = 0) -> str:
    script = tmp_path / "fc-list"
    body = "".join(f"printf '%s\\n' '{line}'\n" for line in lines)
    script.write_text(f"#!/bin/sh\n{body}exit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


# --- discovery ----------------------------------------------------------------------------


def test_fontconfig_faces_join_matplotlibs_each_file_once(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CNNLAB_FONTS", "all")
    copy = tmp_path / "fonts" / "DejaVuSans.ttf"  # the same file as matplotlib's: once
    copy.parent.mkdir()
    copy.write_bytes(MPL[0].path.parent.joinpath("DejaVuSans.ttf").read_bytes())
    extra = tmp_path / "fonts" / "Extra.otf"
    extra.write_bytes(b"not really a font")
    fc = fake_fc_list(
        tmp_path,
        [
            f"{copy}\t0\tTrueType",
            f"{extra}\t0\tCFF",
            f"{tmp_path}/bitmap.pcf.gz\t0\tPCF",  # a bitmap font: not asked for
            f"{tmp_path}/gone.ttf\t0\tTrueType",  # a stale fontconfig cache entry
        ],
    )
    found = fonts.discover_fonts(fc)
    labels = [f.label for f in found]
    assert labels.count("DejaVuSans.ttf") == 1 and "Extra.otf" in labels
    assert not any(label.startswith(("bitmap", "gone")) for label in labels)
    assert set(MPL) - {f for f in MPL if f.path.name == "DejaVuSans.ttf"} <= set(found)


def test_without_fontconfig_the_pool_is_matplotlibs(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setenv("CNNLAB_FONTS", "all")
    monkeypatch.setattr(fonts.shutil, "which", lambda name: None)
    assert fonts.fontconfig_fonts() is None
    assert fonts.discover_fonts() == MPL
    broken = fake_fc_list(tmp_path, ["oops"], code=1)  # present but failing
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.fonts"):
        assert fonts.discover_fonts(broken) == MPL
    assert "fc-list failed" in caplog.text
    monkeypatch.setenv("CNNLAB_FONTS", "some")
    with pytest.raises(ConfigError, match="CNNLAB_FONTS=some: use all"):
        fonts.discover_fonts()


def test_fonts_without_usable_digits_are_left_out_with_the_reason() -> None:
    pool = printed.load_pool(MPL)
    kept = {f.label for f in pool.atlas.fonts}
    why = dict(pool.atlas.rejected)
    assert {"DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "cmr10.ttf", "STIXGeneral.ttf"} <= kept
    assert why["LastResortHE-Regular.ttf"] == "two digits are the same glyph"  # one box
    assert why["STIXSizOneSymReg.ttf"] == "some digits are empty"
    assert why["cmex10.ttf"].startswith("its digits do not read as 0-9")  # math symbols
    assert kept.isdisjoint(why) and len(kept) + len(why) == len(MPL)


# --- the family split ---------------------------------------------------------------------


def test_the_family_split_is_deterministic_disjoint_and_stable() -> None:
    names = [f"family {i}" for i in range(400)]
    seen, unseen = fonts.split_families(names)
    assert (seen, unseen) == fonts.split_families(list(reversed(names)))
    assert seen.isdisjoint(unseen) and seen | unseen == set(names)
    assert 0.18 < len(unseen) / len(names) < 0.32  # UNSEEN_FRACTION = 0.25
    # A family's side depends on its name only: more fonts installed move no one.
    more_seen, more_unseen = fonts.split_families([*names, *(f"new {i}" for i in range(50))])
    assert unseen <= more_unseen and seen <= more_seen
    assert fonts.split_families(names, seed=1)[1] != unseen
    # Two families: one each side, whatever the hash says.
    assert [len(side) for side in fonts.split_families(["a", "b"])] == [1, 1]
    assert fonts.family_key("DejaVu Sans Condensed Bold") == fonts.family_key("DejaVu Sans")


def test_clones_fall_on_one_side_and_the_pool_splits_by_group() -> None:
    base = np.random.default_rng(0).standard_normal((10, 24 * 24))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    other = np.random.default_rng(1).standard_normal((10, 24 * 24))
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    infos = [glyphs.FontInfo(f"{k}.ttf", k, "Regular", k) for k in ("zeta", "alpha", "mid")]
    groups = glyphs._clone_groups(infos, np.stack([base, base, other]))
    assert groups == ["alpha", "alpha", "mid"]  # zeta is alpha's copy; named by the first
    pool = printed.load_pool(MPL)
    seen = {pool.atlas.fonts[i].group for i in pool.seen}
    unseen = {pool.atlas.fonts[i].group for i in pool.unseen}
    assert seen and unseen and seen.isdisjoint(unseen)
    assert len(pool.seen) + len(pool.unseen) == len(pool.atlas.fonts)


# --- rendering ----------------------------------------------------------------------------


def test_printed_digits_are_deterministic_balanced_and_coloured() -> None:
    a = printed.render_printed_digits(50, seed=5, size=32)
    b = printed.render_printed_digits(50, seed=5, size=32)
    assert a.images.shape == (50, 3, 32, 32) and a.images.dtype == np.uint8
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.labels, b.labels)
    assert np.bincount(a.labels).tolist() == [5] * 10
    assert not np.array_equal(printed.render_printed_digits(50, seed=6).images, a.images)
    assert not (a.images == a.images[:, :1]).reshape(50, -1).all(1).any()  # colour, not gray
    assert printed.render_printed_digits(10, seed=5, size=28).images.shape == (10, 3, 28, 28)


@pytest.mark.parametrize("effect", [e for e in EFFECTS if e != "lighter"])
def test_each_rendering_effect_changes_the_images(effect: str) -> None:
    atlas = printed.load_pool(MPL).side("seen")
    on = replace(NONE, **{effect: 15.0 if effect == "rotate" else 1.0})
    plain = printed.render_printed_digits(30, 3, atlas=atlas, style=NONE).images
    changed = printed.render_printed_digits(30, 3, atlas=atlas, style=on).images
    differs = (plain != changed).reshape(30, -1).any(1)
    assert differs.mean() > 0.5, effect
    if effect == "weight":  # and lighter strokes differ from heavier ones
        lighter = replace(on, lighter=1.0)
        assert not np.array_equal(
            printed.render_printed_digits(30, 3, atlas=atlas, style=lighter).images, changed
        )


def test_colours_keep_their_contrast_floor() -> None:
    atlas = printed.load_pool(MPL).side("seen")
    for style, floor, share_low in ((BASIC, MIN_CONTRAST, 0.0), (FULL, LOW_CONTRAST, 0.2)):
        draws = printed._draw_params(2000, printed.streams(0), 32, atlas, style)
        fg, bg, bg2 = (torch.from_numpy(c) for c in (draws.fg, draws.bg, draws.bg2))
        contrast = (luminance(fg) - luminance(bg)).abs()
        assert (contrast >= floor - 1e-6).all()
        # Low contrast only where the style asks for it (and the cap of two leaves it).
        assert 0.5 * share_low / 4 <= (contrast < MIN_CONTRAST).float().mean().item() <= share_low
        # A gradient changes the hue, not the luma, so the contrast holds across it.
        torch.testing.assert_close(luminance(bg2), luminance(bg))


def test_a_plate_holds_its_digit_and_stands_out_from_what_is_round_it() -> None:
    atlas = printed.load_pool(MPL).side("seen")
    draws = printed._draw_params(400, printed.streams(1), 32, atlas, replace(FULL, plate=1))
    e = draws.effects
    on = e.plate[:, 2] > 0
    assert on.sum() == (draws.neighbour < 0).sum() > 200  # every digit without a neighbour
    cover, ring = printed.fx.plate_cover(e.plate, e.ring, 32)
    ink = torch.nn.functional.avg_pool2d(printed._ink(atlas, draws.glyph, draws.inverse, 64), 2)
    inside = (ink * cover).sum((1, 2, 3)) / ink.sum((1, 2, 3))
    assert (inside[torch.from_numpy(on)] > 0.97).float().mean() > 0.95
    assert (cover[torch.from_numpy(~on)] == 1).all() and not ring[torch.from_numpy(~on)].any()
    assert 0.25 < (e.ring[on] > 0).mean() < 0.55 and (ring.flatten(1).amax(1) > 0.9).sum() > 100
    # The plate is the background the digit's colours were drawn against; round it and its
    # ring, colours at least 0.2 apart in luma from the plate, so its edge shows.
    bg = torch.from_numpy(draws.bg).float()
    for k in range(2):
        away = printed.fx.colour_away(bg, e.plate_colours[:, k])
        assert ((luminance(away) - luminance(bg)).abs() >= 0.2 - 1e-5).all()
    # and the edge is in the picture: part of every plate is cut by or ends inside it.
    assert (cover[torch.from_numpy(on)].flatten(1).amin(1) < 0.5).all()


def test_the_training_only_effects_leave_every_other_image_as_it_was() -> None:
    atlas = printed.load_pool(MPL).side("seen")
    assert FULL.plate > 0 and FULL.emboss > 0 and FULL.for_test().plate == 0
    test = printed.render_printed_digits(300, 2, atlas=atlas, style=FULL.for_test())
    train = printed.render_printed_digits(300, 2, atlas=atlas, style=FULL)
    draws = printed._draw_params(300, printed.streams(2), 32, atlas, FULL)
    e = draws.effects
    touched = (e.plate[:, 2] > 0) | (np.abs(e.emboss[:, :2]).sum(1) > 0)
    differs = (test.images != train.images).reshape(300, -1).any(1)
    np.testing.assert_array_equal(differs, touched)  # the rest are the very same images
    assert 0.08 < touched.mean() < 0.3 and (np.abs(e.emboss[:, :2]).sum(1) > 0).any()


def test_an_embossed_digit_is_its_edges_lit_and_shaded_with_no_ink() -> None:
    atlas = printed.load_pool(MPL).side("seen")
    flat = replace(NONE, emboss=1.0)
    draws = printed._draw_params(40, printed.streams(3), 32, atlas, flat)
    offset = draws.effects.emboss[:, :2]
    assert (np.abs(offset).sum(1) > 0).all()
    images = printed.render_printed_digits(40, 3, atlas=atlas, style=flat).images.astype(float)
    plain = printed.render_printed_digits(40, 3, atlas=atlas, style=NONE).images.astype(float)
    bg = draws.bg[:, :, None, None] * 255
    # A plain digit is its ink colour; an embossed one is the background's, but for its
    # edges: pixels lighter than the background (but on white) and darker (but on black).
    ink = np.abs(plain - bg).max(1) > 60
    lighter = ((images - bg).min(1) > 8).reshape(40, -1).any(1)
    darker = ((images - bg).max(1) < -8).reshape(40, -1).any(1)
    assert (lighter | darker).all() and (lighter & darker).mean() > 0.3
    fg_like = np.abs(images - draws.fg[:, :, None, None] * 255).max(1) < 20
    assert (fg_like & ink).sum() < 0.1 * ink.sum()


# --- cache --------------------------------------------------------------------------------


def test_splits_are_different_draws_cached_once_and_keyed_by_the_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train = printed.load_printed_digits("train", 30, 32, tmp_path, faces=MPL)
    test = printed.load_printed_digits("test", 30, 32, tmp_path, faces=MPL)
    unseen = printed.load_printed_digits("unseen", 30, 32, tmp_path, faces=MPL)
    assert len({train.images.tobytes(), test.images.tobytes(), unseen.images.tobytes()}) == 3
    basic = printed.load_printed_digits("train", 30, 32, tmp_path, BASIC, faces=MPL)
    assert basic.images.tobytes() != train.images.tobytes()
    # The test draws ignore the training style.
    assert printed.load_printed_digits(
        "test", 30, 32, tmp_path, BASIC, faces=MPL
    ).images.tobytes() == (test.images.tobytes())
    rendered = []
    real_render = printed.render_printed_digits
    monkeypatch.setattr(
        printed, "render_printed_digits", lambda *a, **k: rendered.append(1) or real_render(*a, **k)
    )
    again = printed.load_printed_digits("train", 30, 32, tmp_path, faces=MPL)
    assert again.images.tobytes() == train.images.tobytes() and not rendered
    fewer = [f for f in MPL if f.path.name != "DejaVuSerif.ttf"]  # a font uninstalled
    printed.load_printed_digits("train", 30, 32, tmp_path, faces=fewer)
    assert rendered == [1]
    with pytest.raises(ConfigError, match="size 30 is not supported; use 28 or 32"):
        printed.load_printed_digits("train", 30, 30, tmp_path)
    with pytest.raises(
        ConfigError, match="unknown split 'val'; use one of train, test, unseen, oldstyle"
    ):
        printed.load_printed_digits("val", 30, 32, tmp_path)


def test_the_glyph_atlas_is_cached_and_a_torn_one_is_rebuilt(tmp_path: Path) -> None:
    atlas = glyphs.load_atlas(MPL, tmp_path)
    (entry,) = tmp_path.glob("glyphs-*")
    again = glyphs.load_atlas(MPL, tmp_path)
    assert again.fonts == atlas.fonts and torch.equal(again.masks, atlas.masks)
    (entry / "atlas.npz").write_bytes(b"torn")
    rebuilt = glyphs.load_atlas(MPL, tmp_path)
    assert torch.equal(rebuilt.masks, atlas.masks)


def test_data_show_lists_every_font_and_its_side(tmp_path: Path, monkeypatch, capsys) -> None:
    write_mnist_like(tmp_path / "data" / "mnist", n_train=60, n_test=20)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("cnnlab.data.digits_wild.PRINTED_TRAIN", 40)
    monkeypatch.setattr("cnnlab.data.digits_wild.PRINTED_TEST", 20)
    argv = ["data", "show", "digits-wild:svhn=0", "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--fonts"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "figure sets draw digits" in out and "seen (printed):" in out
    assert "unseen (printed-unseen):" in out and "oldstyle (printed-oldstyle):" in out
    with open(tmp_path / "digits-wild_svhn=0-fonts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sides = {r["font"]: r["side"] for r in rows}
    assert sides["DejaVuSans.ttf"] in ("seen", "unseen")
    assert sides["LastResortHE-Regular.ttf"] == "left out: two digits are the same glyph"
    assert {"seen", "unseen"} <= set(sides.values())
    assert "fonts of the printed digits" in out  # --fonts prints the table too


def test_no_image_gets_more_than_two_legibility_taking_effects() -> None:
    atlas = printed.load_pool(MPL).side("seen")
    everything = replace(
        FULL,
        noise=1,
        blur=1,
        low_contrast=1,
        outline=1,
        clutter=1,
        low_res=1,
        jpeg=1,
        motion_blur=1,
        defocus=1,
    )
    d = printed._draw_params(500, printed.streams(0), 32, atlas, everything)
    e = d.effects
    contrast = (luminance(torch.from_numpy(d.fg)) - luminance(torch.from_numpy(d.bg))).abs().numpy()
    taken = np.stack(
        [d.noise > 0, d.blur > 0, contrast < MIN_CONTRAST, e.outline, e.clutter[:, :, 4].any(1),
         e.low_res > 0, e.jpeg > 0, e.motion[:, 0] > 0, e.defocus > 0],
        1,
    )  # fmt: skip
    # (A low-contrast pair may come out above MIN_CONTRAST: then it shows as one fewer.)
    assert (taken.sum(1) <= FULL.at_most).all() and (taken.sum(1) == 2).mean() > 0.8
    assert taken.any(0).all()  # and each effect still gets its turn
