"""Batched augmentation: contracts, torchvision references, randomness and the spec grammar."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from cnnlab.data.augment import (
    Cutout,
    GaussianBlur,
    HorizontalFlip,
    PadCrop,
    Recolor,
    RecolorParams,
    ResizedCrop,
    Rotate,
    Translate,
    build_augment,
    luminance,
    warp,
)
from cnnlab.data.augment.pen import Elastic, LowResolution, Slant, Stroke
from cnnlab.errors import ConfigError

OPS: dict[str, Callable[[], Callable[[torch.Tensor, torch.Generator], torch.Tensor]]] = {
    "flip": lambda: HorizontalFlip(0.5),
    "translate": lambda: Translate(0.2),
    "rotate": lambda: Rotate(30.0),
    "crop": lambda: ResizedCrop(0.5),
    "pad_reflect": lambda: PadCrop(4),
    "pad_zero": lambda: PadCrop(4, mode="zero"),
    "cutout": lambda: Cutout(8),
    "recolor": lambda: Recolor(0.5),
    "recolor_gray_texture": lambda: Recolor(0.5, p_gray=0.3, texture=0.5),
    "blur": lambda: GaussianBlur(2.0),
    "mnist": lambda: build_augment("rotate=20,translate=0.1,crop=0.8"),
    "cifar_pad": lambda: build_augment("flip,pad=4,cutout=8"),
    "cifar_translate": lambda: build_augment("flip,translate=0.125,cutout=8"),
    "everything": lambda: build_augment(
        "recolor,crop=0.7,rotate=15,translate=0.1,pad=2,flip,cutout=6"
    ),
    "everything_new": lambda: build_augment(
        "recolor,gray=0.2,texture=0.3,rotate=15,translate=0.1,flip,blur=1.5,cutout=6"
    ),
    "stroke": lambda: Stroke(1.0),
    "slant": lambda: Slant(0.3),
    "elastic": lambda: Elastic(2.0),
    "lowres": lambda: LowResolution(1.0),
    "other_hands": lambda: build_augment(
        "stroke=0.4,recolor,gray=0.3,translate=0.1,slant=0.3,elastic=2,blur=1,lowres=0.2"
    ),
}
# Recolouring leaves colour images as they are, and the pen changes gray images only:
# these ops get gray images in 3 channels.
GRAY_INPUT = {"recolor", "recolor_gray_texture", "everything_new", "stroke", "other_hands"}
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device")])]  # fmt: skip


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def images(b: int = 8, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


def inputs(name: str, b: int = 8, seed: int = 0) -> torch.Tensor:
    x = images(b=b, seed=seed)
    return x[:, :1].expand(-1, 3, -1, -1).contiguous() if name in GRAY_INPUT else x


def distinct(y: torch.Tensor) -> int:
    return torch.unique(y.flatten(1), dim=0).shape[0]


# --- The contract every op and pipeline keeps -------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OPS)
def test_shape_dtype_range_and_device_are_kept(name: str, device: str) -> None:
    x = inputs(name).to(device)
    before = x.clone()
    y = OPS[name]()(x, gen(1, device))
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert y.min().item() >= 0.0 and y.max().item() <= 1.0
    assert torch.equal(x, before), "the input must not be modified"
    assert not torch.equal(y, x), "a random augmentation of random images changed nothing"


@pytest.mark.parametrize("name", OPS)
def test_channels_last_input_gives_the_same_result(name: str) -> None:
    x = inputs(name)
    op = OPS[name]()
    y = op(x, gen(3))
    y_cl = op(x.contiguous(memory_format=torch.channels_last), gen(3))
    torch.testing.assert_close(y_cl, y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", OPS)
def test_same_seed_same_batch_different_seed_different_batch(name: str) -> None:
    x = inputs(name)
    op = OPS[name]()
    assert torch.equal(op(x, gen(5)), op(x, gen(5)))
    assert not torch.equal(op(x, gen(5)), op(x, gen(6)))


# A flip is one of two, and lowres one of about ten sizes: repeats are expected there.
@pytest.mark.parametrize("name", [n for n in OPS if n not in ("flip", "lowres")])
def test_each_sample_gets_its_own_parameters(name: str) -> None:
    x = inputs(name, b=1, seed=7).expand(32, -1, -1, -1).contiguous()
    # Shared parameters would give 1; pad has only 81 windows, so expect ~26 of 32, not 32.
    assert distinct(OPS[name]()(x, gen(8))) >= 16


def test_flip_is_drawn_per_sample() -> None:
    x = images(b=1, seed=7).expand(64, -1, -1, -1).contiguous()
    assert distinct(HorizontalFlip(0.5)(x, gen(8))) == 2


def test_empty_spec_is_the_identity_without_a_copy() -> None:
    x = images()
    for spec in ("", "none", " none ", {}, None):
        assert build_augment(spec)(x, gen(0)) is x


def test_recolor_accepts_one_or_three_gray_channels_and_returns_three() -> None:
    gray = images(c=1)
    op = Recolor(0.5)
    params = op.sample_params(gray, gen(2))
    one = op.apply(gray, params)
    three = op.apply(gray.expand(-1, 3, -1, -1), params)
    assert one.shape == (8, 3, 32, 32)
    torch.testing.assert_close(three, one)
    assert build_augment("recolor,rotate=10,cutout=4")(gray, gen(2)).shape == (8, 3, 32, 32)


# --- Frequencies -----------------------------------------------------------------------------


def left_brighter(y: torch.Tensor) -> torch.Tensor:
    half = y.shape[-1] // 2
    return y[..., :half].mean((1, 2, 3)) > y[..., half:].mean((1, 2, 3))


def left_bright_images(n: int, c: int = 1, size: int = 8) -> torch.Tensor:
    x = torch.zeros(n, c, size, size)
    x[..., : size // 2] = 1.0
    return x


@pytest.mark.parametrize(
    "spec", ["flip=0.3", "translate=0.1,flip=0.3", "pad=2,flip=0.3", "crop=0.8,flip=0.3"]
)
def test_flip_frequency_is_p_on_every_path(spec: str) -> None:
    # The flip runs alone, fused into the affine resample, or folded into the pad-crop gather.
    y = build_augment(spec)(left_bright_images(20_000), gen(11))
    freq = (~left_brighter(y)).float().mean().item()
    assert abs(freq - 0.3) < 0.02


def test_flip_one_always_mirrors_and_absent_flip_never_does() -> None:
    x = left_bright_images(256)
    assert not left_brighter(build_augment("rotate=10,translate=0.1,flip=1")(x, gen(1))).any()
    assert left_brighter(build_augment("rotate=10,translate=0.1")(x, gen(1))).all()


# --- Each op against a single-image torchvision reference, same parameters ------------------


def test_flip_matches_torchvision_exactly() -> None:
    x = images()
    flip = torch.arange(8) % 3 == 0
    y = HorizontalFlip().apply(x, flip)
    for i in range(8):
        expected = TF.horizontal_flip(x[i]) if flip[i] else x[i]
        assert torch.equal(y[i], expected)
    assert torch.equal(warp(x, HorizontalFlip().matrix(flip, 32, 32)), y)


@pytest.mark.parametrize("angle", [-30.0, 12.5, 90.0])
def test_rotate_matches_torchvision(angle: float) -> None:
    x = images(b=4, h=32, w=24)
    y = Rotate(45.0).apply(x, torch.full((4,), angle))
    for i in range(4):
        expected = TF.rotate(x[i], angle, interpolation=InterpolationMode.BILINEAR)
        torch.testing.assert_close(y[i, :, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], atol=1e-4, rtol=0)


def test_translate_by_whole_pixels_matches_torchvision() -> None:
    x = images(b=3)
    shifts = torch.tensor([[3.0, -2.0], [-5.0, 0.0], [0.0, 4.0]])
    y = Translate(0.2).apply(x, shifts)
    for i, (dx, dy) in enumerate(shifts.tolist()):
        expected = TF.affine(x[i], angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0])
        torch.testing.assert_close(y[i], expected, atol=1e-5, rtol=0)


def test_fused_rotate_then_translate_matches_torchvision_affine() -> None:
    x = images(b=2)
    angles, shifts = torch.tensor([20.0, -35.0]), torch.tensor([[2.0, -3.0], [-1.0, 5.0]])
    matrix = Rotate(45.0).matrix(angles, 32, 32) @ Translate(0.2).matrix(shifts, 32, 32)
    y = warp(x, matrix)
    for i in range(2):
        expected = TF.affine(
            x[i],
            angle=-angles[i].item(),  # affine's angle is clockwise, rotate's counter-clockwise
            translate=shifts[i].tolist(),
            scale=1.0,
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(y[i], expected, atol=1e-4, rtol=0)


def test_resized_crop_matches_torchvision() -> None:
    x = images(b=3)
    boxes = [(3, 2, 24, 26), (0, 0, 20, 20), (10, 5, 22, 16)]  # top, left, height, width
    y = ResizedCrop(0.5).apply(x, torch.tensor(boxes, dtype=torch.float32))
    for i, (top, left, h, w) in enumerate(boxes):
        expected = TF.resized_crop(x[i], top, left, h, w, [32, 32], antialias=False)
        # torchvision clamps at the crop's own edge; we read the real neighbours there.
        torch.testing.assert_close(y[i, :, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_resized_crop_boxes_have_the_asked_area_and_ratio_and_fit() -> None:
    x = images(b=4096, c=1, h=8, w=8)
    top, left, h, w = ResizedCrop(0.6).sample_params(x, gen(4)).unbind(1)
    area, ratio = h * w / 64, w / h
    assert area.min() >= 0.6 - 1e-5 and area.max() <= 1 + 1e-5
    assert area.std() > 0.1  # spread over [0.6, 1], not collapsed by the fitting
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 8 + 1e-4).all() and (left + w <= 8 + 1e-4).all()


@pytest.mark.parametrize(
    ("mode", "torchvision_mode"), [("reflect", "reflect"), ("zero", "constant")]
)
def test_pad_crop_matches_torchvision(mode: str, torchvision_mode: str) -> None:
    x = images(b=5)
    offsets = torch.tensor([[0, 0], [8, 8], [0, 8], [3, 5], [4, 4]])
    flip = torch.tensor([False, True, False, True, False])
    op = PadCrop(4, mode=mode)  # type: ignore[arg-type]
    plain, flipped = op.apply(x, offsets), op.apply(x, offsets, flip=flip)
    for i, (top, left) in enumerate(offsets.tolist()):
        padded = TF.pad(x[i], [4], padding_mode=torchvision_mode)
        expected = TF.crop(padded, top, left, 32, 32)
        assert torch.equal(plain[i], expected)
        assert torch.equal(flipped[i], TF.horizontal_flip(expected) if flip[i] else expected)


def test_pad_crop_rejects_reflect_padding_as_large_as_the_image() -> None:
    with pytest.raises(ConfigError, match=r"pad=8 .* 8x8"):
        PadCrop(8)(images(h=8, w=8), gen(0))


def test_cutout_matches_torchvision_erase_clipped_at_the_border() -> None:
    x = images(b=3)
    centres = torch.tensor([[10, 20], [0, 31], [31, 2]])  # row, col
    y = Cutout(8).apply(x, centres)
    for i, (row, col) in enumerate(centres.tolist()):
        top, left = max(row - 4, 0), max(col - 4, 0)
        h, w = min(row + 4, 32) - top, min(col + 4, 32) - left
        assert torch.equal(y[i], TF.erase(x[i], top, left, h, w, torch.tensor(0.0)))


def test_recolor_matches_its_formula_with_inversion_swapping_colours() -> None:
    gray = images(b=2, c=1)
    light, dark = torch.tensor([[0.9, 0.8, 0.1], [1.0, 1.0, 0.5]]), torch.zeros(2, 3)
    params = RecolorParams(light=light, dark=dark, invert=torch.tensor([False, True]))
    y = Recolor().apply(gray, params)
    fg, bg = torch.stack([light[0], dark[1]]), torch.stack([dark[0], light[1]])
    expected = bg[:, :, None, None] * (1 - gray) + fg[:, :, None, None] * gray
    torch.testing.assert_close(y, expected)


def test_recolor_contrast_holds_for_every_sample_and_inversion_has_frequency_p() -> None:
    x = torch.zeros(20_000, 1, 1, 2)
    x[..., 1] = 1.0  # pixel 0 shows the background colour, pixel 1 the digit colour
    y = Recolor(p_invert=0.3, min_contrast=0.3)(x, gen(12))
    bg, fg = luminance(y[:, :, 0, 0]), luminance(y[:, :, 0, 1])
    assert ((fg - bg).abs() >= 0.3 - 1e-5).all()
    assert abs((fg < bg).float().mean().item() - 0.3) < 0.02
    assert (fg - bg).abs().max() > 0.9  # contrast spreads up to the maximum, not pinned at 0.3


# --- Other hands: pen width, slant, elastic wobble, low resolution -----------------------------


def strokes(b: int = 6) -> torch.Tensor:
    """Gray images of a 2 px wide bright cross on black: a pen stroke to thicken or thin."""
    x = torch.zeros(b, 1, 28, 28)
    x[:, :, 13:15, 4:24] = 1.0
    x[:, :, 4:24, 13:15] = 1.0
    return x


def test_stroke_thickens_or_thins_gray_strokes_and_leaves_colour_images_alone() -> None:
    x = strokes()
    params = torch.tensor([1.0, -1.0, 0.0, 0.5, -0.5, 0.0])
    y = Stroke(1.0).apply(x, params)
    ink = y.sum((1, 2, 3))
    assert ink[0] > ink[3] > ink[2] > ink[4] > ink[1]  # thick > half thick > same > thin
    assert torch.equal(y[2], x[2])
    colour = torch.rand(4, 3, 28, 28, generator=gen(0))
    assert (Stroke(1.0).sample_params(colour, gen(1)) == 0).all()  # printed digits: as is
    drawn = Stroke(0.5).sample_params(strokes(4000), gen(2))
    assert 0.45 < (drawn != 0).float().mean() < 0.55  # the share p
    assert 0.45 < (drawn > 0).float().sum() / (drawn != 0).float().sum() < 0.55  # even odds


def test_slant_shears_x_by_the_drawn_factor_about_the_centre() -> None:
    x = strokes(1)
    y = Slant(0.3).apply(x, torch.tensor([0.25]))
    column = x[0, 0, :, 13:15].sum(0)
    assert column.sum() > 0
    top, bottom = y[0, 0, 5].argmax().item(), y[0, 0, 22].argmax().item()
    # y down: a positive shear moves rows below the centre right and rows above it left.
    assert bottom - top == pytest.approx(0.25 * 17, abs=1.5)
    assert torch.allclose(y[0, 0, 13:15], x[0, 0, 13:15], atol=0.35)  # the centre rows stay


def test_elastic_moves_pixels_smoothly_by_about_alpha() -> None:
    x = strokes(64)
    params = Elastic(2.0).sample_params(x, gen(0))
    moves = params.norm(dim=1)
    assert 0.5 < moves.mean() < 2.0 and moves.amax() < 4.0  # typical alpha / 3 .. alpha
    # Smooth: neighbouring pixels move alike.
    step = (params[..., 1:] - params[..., :-1]).abs().mean()
    assert step < 0.3 * params.abs().mean()  # unblurred noise: a step as large as a move
    assert torch.equal(Elastic(2.0).apply(x, torch.zeros_like(params)), x)  # no move: as is
    y = Elastic(2.0).apply(x, params)
    assert not torch.equal(y, x) and float(y.sum()) == pytest.approx(float(x.sum()), rel=0.1)


def test_lowres_blurs_only_the_chosen_images_and_keeps_their_size() -> None:
    x = images(b=6, c=3, h=28, w=28)
    params = torch.tensor([1.0, 0.35, 0.7, 1.0, 0.5, 1.0])
    y = LowResolution(1.0).apply(x, params)
    assert y.shape == x.shape
    untouched = params == 1
    assert torch.equal(y[untouched], x[untouched])
    detail = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean((1, 2, 3))
    assert (detail[~untouched] < 0.5 * detail[untouched].min()).all()  # fine detail is gone
    assert detail[1] < detail[2]  # 35% loses more than 70%
