"""`cnnlab predict`: image decoding and preprocessing, batching, bad files, the CLI, real digits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import raises_one_line
from PIL import Image

from cnnlab.data.loader import Normalization
from cnnlab.inference.images import (
    ImageError,
    InputSpec,
    fit_size,
    flatten_mode,
    like_mnist,
    open_image,
    prepare_image,
    prepare_pil,
    to_float,
)
from cnnlab.inference.predict import find_images, predict_files
from cnnlab.models.registry import build_model, resolve_model
from cnnlab.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

DIGITS = Path(__file__).parent / "data" / "digits"
GRAY = InputSpec(channels=1, size=(32, 32), content=(28, 28), invert="no")
RGB = InputSpec(channels=3, size=(32, 32), content=(32, 32), invert="no")


def save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def solid(mode: str, size: tuple[int, int], color: object) -> Image.Image:
    return Image.new(mode, size, color)  # type: ignore[arg-type]


def random_checkpoint(
    path: Path,
    shape: tuple[int, int, int] = (1, 32, 32),
    dataset: str = "mnist",
    classes: list[str] | None = None,
) -> Path:
    """An untrained LeNet-5 checkpoint: enough for shapes, formats and output checks."""
    torch.manual_seed(0)
    spec = resolve_model("lenet5")
    model = build_model(spec, shape, 10)
    c = shape[0]
    ckpt = Checkpoint(
        model_spec=spec.model_dump(mode="json"),
        classes=classes or [f"class{i}" for i in range(10)],
        input_shape=shape,
        normalization=Normalization((0.2,) * c, (0.3,) * c),
        state_dict=model.state_dict(),
        config={"dataset": dataset},
    )
    save_checkpoint(ckpt, path)
    return path


# --- decoding: every format and mode -------------------------------------------------------


FORMATS = [
    ("png", "RGB"),
    ("png", "RGBA"),
    ("png", "L"),
    ("png", "LA"),
    ("png", "P"),
    ("png", "I;16"),
    ("png", "1"),
    ("jpg", "RGB"),
    ("jpg", "L"),
    ("jpg", "CMYK"),
    ("bmp", "RGB"),
    ("bmp", "L"),
    ("gif", "P"),
    ("webp", "RGB"),
    ("webp", "RGBA"),
]


def any_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16))
    if mode == "P":
        return rgb.quantize(16)
    return rgb.convert(mode)


@pytest.mark.parametrize(("ext", "mode"), FORMATS)
@pytest.mark.parametrize("spec", [GRAY, RGB], ids=["gray-model", "rgb-model"])
def test_every_format_and_mode_becomes_the_model_input(ext, mode, spec, tmp_path):
    path = save(any_image(mode, (45, 30)), tmp_path / f"x.{ext}")
    prepared = prepare_image(path, spec)
    assert prepared.array.shape == (spec.channels, 32, 32)
    assert prepared.array.dtype == np.float32
    assert prepared.array.min() >= 0.0 and prepared.array.max() <= 1.0


def test_transparent_pixels_become_white_and_alpha_blends(tmp_path):
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0, 0)  # fully transparent red: paper
    pixels[0, 1] = (0, 0, 0, 255)  # opaque black ink
    pixels[1, 0] = (0, 0, 0, 128)  # half-transparent black: half ink
    pixels[1, 1] = (0, 0, 255, 255)  # opaque blue
    image = open_image(save(Image.fromarray(pixels), tmp_path / "a.png"))
    x = to_float(flatten_mode(image))
    assert x.shape == (2, 2, 3)
    np.testing.assert_allclose(x[0, 0], [1, 1, 1])
    np.testing.assert_allclose(x[0, 1], [0, 0, 0])
    np.testing.assert_allclose(x[1, 0], [127 / 255] * 3, atol=1.5 / 255)
    np.testing.assert_allclose(x[1, 1], [0, 0, 1])
    la = Image.fromarray(pixels).convert("LA")
    np.testing.assert_allclose(to_float(flatten_mode(la))[0, 0], [1.0])


def test_palette_colours_and_palette_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    x = to_float(flatten_mode(open_image(save(image, tmp_path / "p.png"))))
    np.testing.assert_allclose(x[0], [[1, 0, 0], [0, 1, 0]])
    # Palette index 0 marked transparent (a tRNS chunk): it becomes white paper.
    y = to_float(flatten_mode(open_image(save(image, tmp_path / "t.png", transparency=0))))
    np.testing.assert_allclose(y[0], [[1, 1, 1], [0, 1, 0]])


def test_16_bit_gray_keeps_its_precision(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    image = open_image(save(Image.fromarray(values), tmp_path / "g16.png"))
    assert image.mode == "I;16"
    x = to_float(flatten_mode(image))[0, :, 0]
    # 1000/65535 lies between two 8-bit levels; it must not be rounded to one.
    np.testing.assert_allclose(x, values[0] / 65535, atol=1e-6)
    # A dark 16-bit picture stays dark: the bit depth comes from the mode, not the values.
    dim = np.array([[0, 200]], dtype=np.uint16)
    y = to_float(flatten_mode(open_image(save(Image.fromarray(dim), tmp_path / "dim.png"))))
    np.testing.assert_allclose(y[0, :, 0], dim[0] / 65535, atol=1e-6)


def test_32_bit_and_1_bit_modes(tmp_path):
    eight_bit_in_i = Image.fromarray(np.array([[0, 255]], dtype=np.int32))
    np.testing.assert_allclose(to_float(flatten_mode(eight_bit_in_i))[0, :, 0], [0, 1])
    bilevel = Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1")
    np.testing.assert_allclose(to_float(flatten_mode(bilevel))[0, :, 0], [0, 1])


@pytest.mark.parametrize(("orientation", "turn"), [(6, Image.Transpose.ROTATE_90), (8, None)])
def test_exif_orientation_turns_the_pixels_upright(orientation, turn, tmp_path):
    upright = np.full((40, 20), 255, dtype=np.uint8)  # tall, white, dark top quarter
    upright[:10] = 0
    image = Image.fromarray(upright)
    # Store the pixels turned the way a camera would, with the tag saying how to undo it.
    stored = image.transpose(turn or Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(stored, tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(path).size == (40, 20)  # stored lying down
    shown = np.asarray(open_image(path), dtype=np.float64)
    assert shown.shape == (40, 20)
    assert shown[:8].mean() < 30 and shown[12:].mean() > 225


def test_gif_uses_its_first_frame(tmp_path):
    frames = [solid("L", (8, 8), 255).convert("P"), solid("L", (8, 8), 0).convert("P")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    x = to_float(flatten_mode(open_image(path)))
    assert x.min() == 1.0


# --- geometry and the MNIST look ------------------------------------------------------------


def test_fit_keeps_the_aspect_ratio():
    assert fit_size(300, 400, (28, 28)) == (21, 28)
    assert fit_size(400, 300, (28, 28)) == (28, 21)
    assert fit_size(10, 1000, (28, 28)) == (1, 28)  # never zero pixels
    assert fit_size(14, 14, (28, 28)) == (28, 28)  # small pictures are enlarged


def test_resize_and_pad_geometry_for_a_padded_mnist_model():
    # A 60x30 white picture in a model that takes MNIST (28x28) padded to 32x32:
    # it is scaled to 28x14 and centred, and everything else is MNIST's black.
    x = prepare_pil(solid("L", (60, 30), 255), GRAY).array[0]
    assert x.shape == (32, 32)
    rows, cols = np.nonzero(x > 0.5)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 22, 2, 29)
    assert x[x <= 0.5].max() == 0.0
    np.testing.assert_allclose(x[9:23, 2:30], 1.0)


def test_mnist_checkpoints_frame_pictures_like_mnist(tmp_path):
    mnist = InputSpec.for_checkpoint(load_checkpoint(random_checkpoint(tmp_path / "m.pt")))
    assert (mnist.size, mnist.content, mnist.mass_centred) == ((32, 32), (28, 28), True)
    other = load_checkpoint(random_checkpoint(tmp_path / "o.pt", (3, 32, 32), "cifar10"))
    spec = InputSpec.for_checkpoint(other)
    assert (spec.size, spec.content, spec.mass_centred) == ((32, 32), (32, 32), False)


def test_mass_centring_moves_the_centre_of_mass_to_the_middle():
    # A '7'-like figure: a heavy bar at the top of its box, a thin stem below.
    x = np.zeros((40, 40), dtype=np.uint8)
    x[6:10, 8:32] = 255
    x[10:34, 26:29] = 255
    spec = InputSpec(channels=1, size=(32, 32), content=(28, 28), mass_centred=True)
    centred = prepare_pil(Image.fromarray(x), spec).array[0]
    boxed = prepare_pil(Image.fromarray(x), GRAY).array[0]
    rows = np.arange(32)
    com = (centred.sum(axis=1) @ rows / centred.sum(), centred.sum(axis=0) @ rows / centred.sum())
    assert abs(com[0] - 16) <= 0.5 and abs(com[1] - 16) <= 0.5
    assert boxed.sum(axis=1) @ rows / boxed.sum() < 14  # box-centred, the mass sits high
    np.testing.assert_allclose(centred.sum(), boxed.sum(), rtol=1e-6)  # moved, not cut


def test_colour_models_pad_with_the_border_colour():
    image = solid("RGB", (64, 32), (10, 200, 30))
    x = prepare_pil(image, RGB).array
    assert x.shape == (3, 32, 32)
    np.testing.assert_allclose(x[:, 0, 0], np.array([10, 200, 30]) / 255, atol=1e-6)
    np.testing.assert_allclose(x[:, 31, 31], np.array([10, 200, 30]) / 255, atol=1e-6)


def test_channel_conversion():
    red = prepare_pil(solid("RGB", (8, 8), (255, 0, 0)), GRAY).array
    np.testing.assert_allclose(red[0, 16, 16], 0.299, atol=1 / 255)  # BT.601 luma
    gray = prepare_pil(solid("L", (8, 8), 100), RGB).array
    np.testing.assert_allclose(gray[:, 16, 16], [100 / 255] * 3, atol=1e-6)


def digit_like(background: float, ink: float, size: int = 40) -> np.ndarray:
    x = np.full((size, size), background, dtype=np.float32)
    x[8:32, 18:23] = ink  # a '1'
    x[8:12, 12:23] = ink
    return x


@pytest.mark.parametrize(
    ("background", "ink", "inverted"),
    [
        (1.0, 0.0, True),  # black ink on white paper
        (0.85, 0.25, True),  # pencil on gray paper
        (0.0, 1.0, False),  # MNIST itself
        (0.5, 0.8, False),  # light digit on mid-gray
        (0.5, 0.2, True),  # dark digit on mid-gray
    ],
)
def test_auto_invert_and_stretch_give_mnist_polarity_and_range(background, ink, inverted):
    x, was_inverted = like_mnist(digit_like(background, ink), "auto")
    assert was_inverted is inverted
    assert x[0, 0] == 0.0 and x[20, 20] == 1.0  # background black, stroke white


def test_invert_yes_and_no_are_obeyed():
    picture = digit_like(1.0, 0.0)
    assert like_mnist(picture, "no")[1] is False
    assert like_mnist(digit_like(0.0, 1.0), "yes")[1] is True
    # Forced not to invert ink on paper, nothing is stretched into nonsense either.
    x, _ = like_mnist(picture, "no")
    np.testing.assert_allclose(x, picture)


def test_a_blank_picture_is_not_stretched_into_noise():
    rng = np.random.default_rng(0)
    flat = (0.5 + rng.normal(0, 0.01, (28, 28))).astype(np.float32)
    x, _ = like_mnist(flat, "auto")
    assert x.max() - x.min() < 0.1


# --- bad files ------------------------------------------------------------------------------


def bad_files(folder: Path) -> dict[str, str]:
    """Unreadable files (name -> expected fragment of its message), written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.png").write_text("these are not pixels\n")
    (folder / "empty.jpg").write_bytes(b"")
    good_png = io.BytesIO()
    any_image("RGB", (64, 64)).save(good_png, format="PNG")
    (folder / "cut.png").write_bytes(good_png.getvalue()[: len(good_png.getvalue()) // 2])
    good_jpg = io.BytesIO()
    any_image("RGB", (64, 64)).save(good_jpg, format="JPEG")
    (folder / "cut.jpg").write_bytes(good_jpg.getvalue()[: len(good_jpg.getvalue()) // 2])
    return {
        "notes.png": "not an image",
        "empty.jpg": "empty file",
        "cut.png": "truncated or corrupt",
        "cut.jpg": "truncated or corrupt",
    }


def test_unreadable_files_raise_one_clear_line_naming_them(tmp_path):
    for name, fragment in bad_files(tmp_path).items():
        with raises_one_line(ImageError, name, fragment):
            prepare_image(tmp_path / name, GRAY)
    with raises_one_line(ImageError, "missing.png", "no such file"):
        prepare_image(tmp_path / "missing.png", GRAY)


def test_folders_are_searched_recursively_by_suffix_and_sorted(tmp_path):
    for rel in ("b/2.png", "a/1.JPG", "a/z/3.webp", "c.gif", "skip.txt", "a/skip.npy"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = find_images([tmp_path, tmp_path / "explicit.tiff"])
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == ["a/1.JPG", "a/z/3.webp", "b/2.png", "c.gif", "explicit.tiff"]
    (tmp_path / "none").mkdir()
    with raises_one_line(Exception, "no image files", "none"):
        find_images([tmp_path / "none"])


def test_bad_files_are_reported_and_the_others_still_predicted(tmp_path):
    ckpt = load_checkpoint(random_checkpoint(tmp_path / "ckpt.pt"))
    expected = bad_files(tmp_path / "in")
    for i in range(5):
        save(any_image("RGB", (20, 30), seed=i), tmp_path / "in" / f"ok{i}.png")
    files = find_images([tmp_path / "in"])
    preds = list(predict_files(ckpt, files, batch_size=3, workers=2))
    assert [p.path for p in preds] == files  # one per file, in order, across batches
    errors = {p.path.name: p.error for p in preds if p.error is not None}
    assert set(errors) == set(expected)
    for name, fragment in expected.items():
        assert fragment in errors[name] and name in errors[name]
    assert all(len(p.top) == 3 for p in preds if p.error is None)


def test_top_k_bounds_and_probabilities(tmp_path):
    ckpt = load_checkpoint(random_checkpoint(tmp_path / "ckpt.pt"))
    path = save(any_image("L", (28, 28)), tmp_path / "x.png")
    (everything,) = predict_files(ckpt, [path], top_k=50)
    assert len(everything.top) == 10  # at most the number of classes
    probs = [p for _, p in everything.top]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    (one,) = predict_files(ckpt, [path], top_k=1)
    assert one.top == everything.top[:1]
    with raises_one_line(Exception, "--top-k 0"):
        list(predict_files(ckpt, [path], top_k=0))


def test_batching_does_not_change_the_answers(tmp_path):
    ckpt = load_checkpoint(random_checkpoint(tmp_path / "ckpt.pt", shape=(3, 32, 32), dataset="x"))
    paths = [save(any_image("RGB", (33, 47), seed=i), tmp_path / f"{i}.png") for i in range(7)]
    one_by_one = [p.top for p in predict_files(ckpt, paths, batch_size=1, top_k=10)]
    batched = [p.top for p in predict_files(ckpt, paths, batch_size=4, top_k=10)]
    for a, b in zip(one_by_one, batched, strict=True):
        assert [label for label, _ in a] == [label for label, _ in b]
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], atol=1e-5)
