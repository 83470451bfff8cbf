"""Augmentation specs (strings, TOML tables, errors) and recolouring gray images with textures and blur."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from pydantic import ValidationError
from test_augment import gen, images

from cnnlab.data.augment import (
    Augment,
    AugmentSpec,
    GaussianBlur,
    Recolor,
    build_augment,
    is_gray,
    parse_augment,
)
from cnnlab.errors import ConfigError

# --- The spec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("rotate=20,translate=0.1,crop=0.8", "crop=0.8,rotate=20,translate=0.1"),
        ("flip, pad=4, cutout=8", "pad=4,flip=0.5,cutout=8"),
        ("flip=0.3,recolor", "recolor=0.5,flip=0.3"),
        ("recolor=0", "recolor=0"),
        ("rotate=12.345678901", "rotate=12.345678901"),
        ("none", "none"),
        ("", "none"),
    ],
)
def test_spec_round_trips_through_its_string(text: str, canonical: str) -> None:
    spec = parse_augment(text)
    assert spec.to_string() == str(spec) == canonical
    assert parse_augment(spec.to_string()) == spec


def test_spec_from_a_toml_table_and_through_json() -> None:
    spec = parse_augment({"rotate": 20, "translate": 0.1, "flip": True, "recolor": False})
    assert spec == parse_augment("rotate=20,translate=0.1,flip")
    assert parse_augment(json.loads(json.dumps(spec.model_dump()))) == spec
    assert AugmentSpec.model_validate_json(spec.model_dump_json()) == spec
    assert isinstance(parse_augment("pad=4.0").pad, int)


def test_spec_is_frozen_and_rejects_unknown_fields() -> None:
    spec = parse_augment("flip")
    with pytest.raises(ValidationError):
        spec.flip = 0.2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        AugmentSpec(rotat=3)  # type: ignore[call-arg]


def test_build_augment_takes_a_spec_or_its_string() -> None:
    assert isinstance(build_augment("flip"), Augment)
    assert build_augment(parse_augment("flip")).spec == build_augment("flip").spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "rotat=20",
            r"unknown op 'rotat'; valid: .*crop=.*rotate=deg.*translate=frac.*pad=px.*flip",
        ),
        ({"rotat": 20}, r"unknown op 'rotat'; valid: .*recolor\[=p_invert\]"),
        ("rotate", r"rotate needs a value: rotate=deg"),
        ("rotate=abc", r"rotate=abc is invalid; rotate=deg takes 0 < deg <= 180"),
        ("rotate=0", r"rotate=0 is invalid; rotate=deg takes 0 < deg <= 180"),
        ("rotate=nan", r"rotate=nan is invalid"),
        ({"rotate": True}, r"rotate=True is invalid"),
        ({"rotate": "x"}, r"rotate=x is invalid"),
        ("translate=1", r"translate=1 is invalid; translate=frac takes 0 < frac < 1"),
        ("crop=1.5", r"crop=1.5 is invalid; crop=min_scale takes 0 < min_scale < 1"),
        ("pad=2.5", r"pad=2.5 is invalid; pad=px takes a whole number px >= 1"),
        ("pad=0", r"pad=0 is invalid"),
        ("cutout=-3", r"cutout=-3 is invalid; cutout=px takes a whole number px >= 1"),
        ("flip=0", r"flip=0 is invalid; flip\[=p\] takes 0 < p <= 1"),
        ("recolor=1.2", r"recolor=1.2 is invalid; recolor\[=p_invert\] takes 0 <= p_invert <= 1"),
        ("flip,flip=0.2", r"flip given twice in 'flip,flip=0.2'"),
        ("none,flip", r"'none' cannot be combined with other ops in 'none,flip'"),
        ("flip,,pad=4", r"empty op in 'flip,,pad=4'"),
        (["flip"], r"expected a string like 'rotate=20,flip' or a table, got list"),
    ],
)
def test_spec_errors_are_one_line_naming_the_problem(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_augment(spec)  # type: ignore[arg-type]
    text = str(caught.value)
    assert text.startswith("augment: ") and "\n" not in text


def test_unknown_op_lists_every_op_with_its_meaning() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_augment("zoom=2")
    text = str(caught.value)
    for usage in ("flip[=p]", "translate=frac", "pad=px", "rotate=deg", "crop=min_scale"):
        assert f"{usage} (" in text
    assert "cutout=px (" in text and "recolor[=p_invert] (" in text and "nearest (" in text
    assert "gray=p (" in text and "texture=amp (" in text and "blur=sigma (" in text
    assert len(text.split("; ")) == 17  # header, fifteen ops, 'or none'


def test_nearest_resampling_keeps_pixel_values_and_round_trips() -> None:
    spec = parse_augment("rotate=20,translate=0.1,crop=0.8,nearest")
    assert spec.to_string() == "crop=0.8,rotate=20,translate=0.1,nearest"
    assert parse_augment(spec.to_string()) == spec
    assert parse_augment({"rotate": 20, "nearest": True}).nearest == 1
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    nearest = build_augment(spec)(x, torch.Generator().manual_seed(2))
    bilinear = build_augment("rotate=20,translate=0.1,crop=0.8")(
        x, torch.Generator().manual_seed(2)
    )
    # Nearest copies input pixels (or the zero fill); bilinear blends them into new values.
    allowed = torch.cat([x.flatten(), torch.zeros(1)])
    assert torch.isin(nearest.flatten(), allowed).all()
    assert not torch.isin(bilinear.flatten(), allowed).all()
    with pytest.raises(ConfigError, match="nearest takes no value"):
        parse_augment("nearest=2")


# --- Recolouring only gray images, keeping some gray, textured backgrounds, blur -------------


def test_recolor_paints_gray_images_and_leaves_colour_images_alone() -> None:
    colour = images(b=4, seed=1)
    gray = images(b=4, c=1, seed=2).expand(-1, 3, -1, -1)
    x = torch.cat([colour, gray])
    assert is_gray(x).tolist() == [False] * 4 + [True] * 4
    assert is_gray(images(b=2, c=1)).all()
    for op in (Recolor(0.5), Recolor(0.5, p_gray=0.0, texture=0.5), build_augment("recolor")):
        y = op(x, gen(3))
        assert torch.equal(y[:4], colour)
        assert not is_gray(y[4:]).any()


def test_gray_is_the_fraction_of_gray_images_left_gray() -> None:
    x = torch.zeros(20_000, 1, 1, 2)
    x[..., 1] = 1.0
    for op in (Recolor(0.5, p_gray=0.3), build_augment("recolor,gray=0.3")):
        y = op(x, gen(4))
        kept = is_gray(y)
        assert abs(kept.float().mean().item() - 0.3) < 0.02
        assert torch.equal(y[kept], x[kept].expand(-1, 3, -1, -1))
    assert not is_gray(build_augment("recolor")(x, gen(4))).any()


def test_texture_changes_only_the_background_within_its_amplitude() -> None:
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 4:12, 6:10] = 1.0  # the digit
    digit = x[0, 0].bool()
    plain, textured = Recolor(0.5), Recolor(0.5, texture=0.4)
    params = textured.sample_params(x, gen(5))
    assert params.texture is not None and params.texture.abs().max() <= 0.4 + 1e-6
    flat = plain.apply(x, params._replace(texture=None))
    y = textured.apply(x, params)
    # The digit keeps its flat colour; the background varies around its colour.
    assert torch.equal(y[..., digit], flat[..., digit])
    assert flat[..., ~digit].std(-1).max() == 0
    assert (y[..., ~digit].std(-1) > 0).float().mean() > 0.9
    assert (y - flat).abs().max() <= 0.4 + 1e-6
    low = torch.nn.functional.avg_pool2d(params.texture, 4)  # the smooth part is not all noise
    assert low.flatten(1).std(1).mean() > 0.02


def test_blur_with_sigma_near_zero_is_the_identity() -> None:
    x = images(b=4)
    torch.testing.assert_close(GaussianBlur(3.0).apply(x, torch.zeros(4)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(GaussianBlur(1.0).apply(x, torch.full((4,), 0.05)), x)


def test_blur_matches_torchvision_and_removes_high_frequencies() -> None:
    x = images(b=3)
    sigmas = torch.tensor([0.6, 1.0, 1.9])
    y = GaussianBlur(2.0).apply(x, sigmas)  # kernel radius ceil(3 * 2.0) = 6
    for i, sigma in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(x[i], [13, 13], [sigma, sigma])
        # torchvision reflects at the border, we replicate: compare the interior.
        torch.testing.assert_close(y[i, :, 6:-6, 6:-6], expected[:, 6:-6, 6:-6], atol=1e-5, rtol=0)

    def high_frequency_energy(z: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft2(z - z.mean((-2, -1), keepdim=True)).abs().square()
        return spectrum[..., 8:24, 8:].sum((1, 2, 3))  # the upper half of the frequencies

    energy = high_frequency_energy(y)
    assert (energy < 0.2 * high_frequency_energy(x)).all()
    assert energy[2] < energy[1] < energy[0]  # more blur, less detail


def test_blur_sigmas_are_uniform_up_to_sigma_per_sample() -> None:
    sigmas = GaussianBlur(2.5).sample_params(torch.zeros(10_000, 1, 2, 2), gen(6))
    assert sigmas.min() >= 0 and sigmas.max() <= 2.5
    assert abs(sigmas.mean().item() - 1.25) < 0.03


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("texture=0.3,recolor,gray=0.25", "recolor=0.5,gray=0.25,texture=0.3"),
        ("cutout=4,blur=0.5,flip", "flip=0.5,blur=0.5,cutout=4"),
        ("blur=3,recolor=0,gray=0", "recolor=0,gray=0,blur=3"),
    ],
)
def test_new_ops_round_trip_through_the_spec(text: str, canonical: str) -> None:
    spec = parse_augment(text)
    assert spec.to_string() == canonical
    assert parse_augment(canonical) == spec
    assert AugmentSpec.model_validate_json(spec.model_dump_json()) == spec


def test_new_ops_from_a_toml_table() -> None:
    spec = parse_augment({"recolor": True, "gray": 0.1, "texture": 0.2, "blur": 1})
    assert spec.to_string() == "recolor=0.5,gray=0.1,texture=0.2,blur=1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("recolor,gray=1", r"gray=1 is invalid; gray=p takes 0 <= p < 1"),
        ("recolor,gray=-0.1", r"gray=-0.1 is invalid"),
        ("recolor,texture=0", r"texture=0 is invalid; texture=amp takes 0 < amp <= 1"),
        ("recolor,texture=1.5", r"texture=1.5 is invalid"),
        ("blur=0", r"blur=0 is invalid; blur=sigma takes 0 < sigma <= 3"),
        ("blur=3.5", r"blur=3.5 is invalid"),
        ("blur", r"blur needs a value: blur=sigma"),
        ("gray=0.2", r"gray=0.2 only works with recolor; add recolor \(e.g. 'recolor,gray=0.2'\)"),
        ("texture=0.3,rotate=5", r"texture=0.3 only works with recolor"),
        ({"gray": 0.2, "recolor": False}, r"gray=0.2 only works with recolor"),
    ],
)
def test_new_op_errors_are_one_line(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_augment(spec)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_with_recolor_blur_touches_only_the_painted_images():
    gen = torch.Generator().manual_seed(0)
    gray = torch.zeros(64, 3, 16, 16)
    gray[:, :, 6:10, 6:10] = 1.0  # a sharp square "digit", gray in 3 channels
    colour = torch.rand(8, 3, 16, 16, generator=gen)
    x = torch.cat([gray, colour])
    out = build_augment("recolor,gray=0.5,blur=2")(x, torch.Generator().manual_seed(1))
    # Images left gray come out exactly as they went in (sharp), and so do colour images.
    kept_gray = is_gray(out[:64])
    assert 0 < kept_gray.sum() < 64
    torch.testing.assert_close(out[:64][kept_gray], x[:64][kept_gray])
    torch.testing.assert_close(out[64:], colour)
    # Without recolor, blur applies to every image.
    blurred = build_augment("blur=2")(gray, torch.Generator().manual_seed(1))
    assert (blurred != gray).flatten(1).any(1).float().mean() > 0.9
