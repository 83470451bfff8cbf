"""predict's figure finder: a small figure in a large picture is cropped to before scaling;
pictures the figure already fills (every hand-made test picture) are left whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.inference.images import InputSpec, flatten_mode, open_image, prepare_pil
from cnnlab.inference.locate import figure_box, wants_locate

DATA = Path(__file__).parent / "data"
PICTURES = sorted(
    p for d in ("digits", "digits-wild") for p in (DATA / d).iterdir()
    if p.suffix not in (".json", ".py")
)  # fmt: skip
MNIST_LIKE = InputSpec(channels=1, size=(28, 28), content=(28, 28))


def in_a_large_picture(picture: Image.Image, seed: int = 0) -> tuple[Image.Image, tuple]:
    """``picture`` pasted at a random place into a 500x400 picture of its border's colour,
    with a little noise: a figure filling a fifth of a photo. Returns it and the paste box."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float64)
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3)])
    canvas = np.median(border, axis=0) + rng.normal(0, 4, (400, 500, 3))
    x, y = int(rng.integers(0, 500 - picture.width)), int(rng.integers(0, 400 - picture.height))
    canvas[y : y + picture.height, x : x + picture.width] = pixels
    box = (x, y, x + picture.width, y + picture.height)
    return Image.fromarray(canvas.clip(0, 255).astype(np.uint8)), box


@pytest.mark.parametrize("path", PICTURES, ids=lambda p: p.name)
def test_a_picture_the_figure_fills_is_left_whole(path: Path) -> None:
    assert figure_box(flatten_mode(open_image(path)).convert("RGB")) is None


@pytest.mark.parametrize("name", ["d3_exif_rot90.jpg", "d7_midgray.png", "w03_colours.png",
                                  "w12_embossed.png", "w17_notebook.jpg"])  # fmt: skip
def test_a_small_figure_in_a_large_picture_is_found_and_read_as_if_alone(name: str) -> None:
    path = next(p for p in PICTURES if p.name == name)
    alone = flatten_mode(open_image(path)).convert("RGB")
    side = max(alone.size)
    alone = alone.resize((100 * alone.width // side, 100 * alone.height // side))
    large, (x0, y0, x1, y1) = in_a_large_picture(alone)
    box = figure_box(large)
    assert box is not None
    left, top, right, bottom = box
    # Around the figure in the pasted picture (give or take the margin), not the whole.
    slack = 25  # MARGIN of a 100 px figure, and then some
    assert x0 - slack <= left and y0 - slack <= top and right <= x1 + slack
    assert bottom <= y1 + slack and (right - left) < 250
    assert (right - left) * (bottom - top) > 0.25 * (x1 - x0) * (y1 - y0)
    on = prepare_pil(large, InputSpec(1, (28, 28), (28, 28), locate=True)).array.ravel()
    off = prepare_pil(large, MNIST_LIKE).array.ravel()
    reference = prepare_pil(large.crop(box), MNIST_LIKE).array.ravel()
    assert np.corrcoef(on, reference)[0, 1] > 0.99
    assert (off > 0.5).sum() < 0.3 * (on > 0.5).sum()  # unlocated, it arrives a few px tall


def test_a_blank_picture_has_no_figure_and_the_choice_follows_the_model() -> None:
    blank = Image.fromarray(np.full((120, 160, 3), 200, np.uint8))
    assert figure_box(blank) is None
    assert wants_locate("auto", "mnist") and wants_locate("auto", "digits-wild:size=28")
    assert not wants_locate("auto", "cifar10") and not wants_locate("auto", "folder:/x")
    assert wants_locate("on", "cifar10") and not wants_locate("off", "mnist")
