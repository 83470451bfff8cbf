"""Any image file -> the float array a checkpoint's model was trained on, minus normalisation.

``prepare_image`` decodes one file (PNG, JPEG, BMP, GIF, WebP; any size and
mode), turns it upright by its EXIF orientation, flattens transparency onto
white, fits it into the model's input keeping its aspect ratio, converts the
channel count, and, for one-channel (MNIST-like) models, makes it look like
MNIST: a light figure on a black background with full contrast. The result
is float32 (C, H, W) in [0, 1]; the checkpoint's normalisation is applied
per batch by the caller.
"""

from __future__ import annotations

import errno
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlab.data.folder import max_image_pixels
from cnnlab.errors import CnnlabError
from cnnlab.inference.locate import Locate, border_ring, crop_to_figure, wants_locate

if TYPE_CHECKING:
    from cnnlab.training.checkpoint import Checkpoint

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

Invert = Literal["auto", "yes", "no"]


@dataclass(frozen=True)
class Framing:
    """How a dataset frames its images, where that differs from "fill the model's input"."""

    size: tuple[int, int]  # (H, W) the images are stored at, before padding for a model
    mass_centred: bool  # placed so that their centre of mass is the frame's centre


# A model may take a larger input than its dataset's images (LeNet-5 takes MNIST
# zero-padded from 28x28 to 32x32); a picture must then fill only the part real
# training images filled, or its digit comes out larger than any digit the model saw.
# MNIST also moved each digit so that its centre of mass, not its bounding box, is in
# the middle: a 7's mass is high (its bar), so MNIST's 7s sit about 2 px lower than a
# box-centred 7 (measured on the test set: 2.2 px), and a box-centred 7 was read as a
# 2 or a 3 (tests/data/digits, LeNet-5 after one MNIST epoch, seeds 0-2: 14, 12, 12 of
# 14 right when box-centred, 14 each when mass-centred, 12, 11, 11 when the picture
# fills the whole 32x32 input). Fashion-MNIST centres each item's box. Checkpoints do
# not record any of this, so it is looked up by the name of the dataset the checkpoint
# was trained on.
FRAMINGS: dict[str, Framing] = {
    "mnist": Framing((28, 28), mass_centred=True),
    "fashion-mnist": Framing((28, 28), mass_centred=False),
}

# Below this spread between background and figure, an image is treated as blank:
# stretching it would only blow its noise up to full range.
MIN_CONTRAST = 0.1

_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # PIL's "L" uses the same luma
_EXIF_ORIENTATION = 0x0112


class ImageError(CnnlabError):
    """One input file is not a readable image; the others can still be predicted."""


@dataclass(frozen=True)
class InputSpec:
    """What a checkpoint's model takes, and how to fit a picture into it."""

    channels: int
    size: tuple[int, int]  # the model's input (H, W)
    content: tuple[int, int]  # the part of it a picture fills (H, W); the rest is padding
    invert: Invert = "auto"
    mass_centred: bool = False  # gray models: move the figure's centre of mass to the middle
    locate: bool = False  # crop to the largest figure first (cnnlab.inference.locate)

    @classmethod
    def for_checkpoint(
        cls, ckpt: Checkpoint, invert: Invert = "auto", locate: Locate = "auto"
    ) -> InputSpec:
        c, h, w = ckpt.input_shape
        if c not in (1, 3):
            raise CnnlabError(
                f"the model takes {c}-channel images; predict handles 1 (gray) or 3 (RGB)"
            )
        framing = FRAMINGS.get(str(ckpt.config.get("dataset", "")))
        mass_centred = framing is not None and framing.mass_centred and c == 1
        dataset = str(ckpt.config.get("dataset", ""))
        return cls(
            c, (h, w), content_size(ckpt), invert, mass_centred, wants_locate(locate, dataset)
        )


def content_size(ckpt: Checkpoint) -> tuple[int, int]:
    """(H, W) of the part of the model's input that training images filled."""
    _, h, w = ckpt.input_shape
    framing = FRAMINGS.get(str(ckpt.config.get("dataset", "")))
    if framing is None or framing.size[0] > h or framing.size[1] > w:
        return (h, w)
    return framing.size


@dataclass(frozen=True)
class Prepared:
    array: np.ndarray  # float32 (C, H, W) in [0, 1], not normalised
    inverted: bool


def prepare_image(path: Path, spec: InputSpec) -> Prepared:
    """Read ``path`` and shape it for the model described by ``spec``. Raises ImageError."""
    image = open_image(path, draft_size=max(spec.size))
    return prepare_pil(image, spec)


def prepare_pil(image: Image.Image, spec: InputSpec) -> Prepared:
    """The decoded, upright ``image`` as model input: fitted, channel-converted, padded."""
    flat = flatten_mode(image)
    if spec.locate:
        flat = crop_to_figure(flat)
    if spec.channels == 1 and flat.mode == "RGB":
        # Pillow's "L" is the same BT.601 luma; converting before resizing resizes one
        # channel instead of three.
        flat = flat.convert("L")
    fitted = to_float(resize_to_fit(flat, spec.content))  # (h, w, 1 or 3), h, w <= content
    x = to_channels(fitted, spec.channels)
    if spec.channels == 1:
        gray, inverted = like_mnist(x[:, :, 0], spec.invert)
        x = gray[:, :, None]
        # MNIST's frame is exactly zero (and so is the padding that takes it to 32x32);
        # after like_mnist the background is zero too, so the padding matches it.
        fill = np.zeros(1, dtype=np.float32)
    else:
        inverted = spec.invert == "yes"
        if inverted:
            x = 1.0 - x
        # Colour datasets (CIFAR, SVHN) are full-bleed photos without borders; extending the
        # picture's own border colour is closer to that than black bars would be.
        fill = np.median(border_ring(x), axis=0).astype(np.float32)
    canvas = pad_center(x, spec.size, fill)
    if spec.mass_centred:
        canvas = centre_mass(canvas)
    return Prepared(canvas.transpose(2, 0, 1).copy(), inverted)


def open_image(path: Path, draft_size: int | None = None) -> Image.Image:
    """Decode the first frame of ``path``, upright by its EXIF orientation. Raises ImageError."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        # Our own file object: Pillow keeps the files of multi-frame images (GIF, WebP)
        # open after load() when it opened them itself, and 10,000 GIFs would run out of
        # file handles. Only the first frame is ever used.
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said below
            image = Image.open(f)
            limit = max_image_pixels()
            if image.width * image.height > limit:
                raise ImageError(
                    f"{path}: {image.width}x{image.height} pixels, more than the {limit:,} an "
                    "image may have here; shrink it, or set CNNLAB_MAX_IMAGE_PIXELS to allow more"
                )
            if draft_size is not None and image.format == "JPEG":
                # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; a 12-megapixel photo
                # then costs what a thumbnail does. draft() never goes below the size asked.
                image.draft(image.mode, (2 * draft_size, 2 * draft_size))
            image.load()
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation != 1:
                image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied; make it readable") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF and WebP are)"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None:
            raise ImageError(_open_problem(path, exc)) from None  # the path, not the image
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{path}: truncated or corrupt image ({reason[:160]})") from None
    return image


def _open_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path}: a symbolic link loop (it points back to itself); point it at an image"
    return f"{path}: cannot open it ({exc.strerror})"


def flatten_mode(image: Image.Image) -> Image.Image:
    """``image`` as "L", "RGB" or, for 16- and 32-bit gray, "F" in 0..255 units.

    Transparency is composited onto white: transparent pixels of drawings, scans and
    icons stand for paper, and a dark figure on them then reads as ink on paper
    (for MNIST-like models the automatic inversion turns that into MNIST's polarity).
    """
    mode = image.mode
    if mode in ("L", "RGB", "F"):
        return image if mode != "F" else _as_float_image(np.asarray(image, dtype=np.float32))
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16"):
        return Image.fromarray(np.asarray(image).astype(np.float32) / 257.0)
    if mode.startswith("I"):
        return _as_float_image(np.asarray(image))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        if not has_alpha:
            return image
        mode = "RGBA"
    if mode in ("LA", "La", "RGBA", "RGBa", "RGBX"):
        if mode == "RGBX":
            return image.convert("RGB")
        image = image.convert("LA" if mode.startswith("L") else "RGBA")
        color = image.convert("L" if mode.startswith("L") else "RGB")
        white = Image.new(color.mode, image.size, 255 if color.mode == "L" else (255, 255, 255))
        white.paste(color, mask=image.getchannel("A"))
        return white
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _as_float_image(values: np.ndarray) -> Image.Image:
    """A 32-bit integer or float gray array as an "F" image in 0..255 units."""
    values = values.astype(np.float32)
    peak = float(values.max()) if values.size else 0.0
    # These modes do not say their bit depth ("I" holds 8-, 12- and 16-bit data alike),
    # so the range is read off the values: at most 1 is a [0, 1] image, at most 255 an
    # 8-bit one, anything larger 16-bit.
    if peak > 255:
        values = values / 257.0
    elif 0 < peak <= 1:
        values = values * 255.0
    return Image.fromarray(np.clip(values, 0, 255).astype(np.float32))


def fit_size(height: int, width: int, box: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a ``height`` x ``width`` picture scaled to fit ``box`` with its aspect ratio."""
    bh, bw = box
    scale = min(bh / height, bw / width)
    return (
        min(bh, max(1, round(height * scale))),
        min(bw, max(1, round(width * scale))),
    )


def resize_to_fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    h, w = fit_size(image.height, image.width, box)
    if (h, w) == (image.height, image.width):
        return image
    # Shrinking averages each output pixel over the area it covers (BOX): that is how
    # MNIST's anti-aliased gray edges arose, and unlike Lanczos it adds no ringing halo
    # for the contrast stretch to amplify. Enlarging a small picture interpolates.
    shrinking = h < image.height or w < image.width
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return image.resize((w, h), resample)


def to_float(image: Image.Image) -> np.ndarray:
    """An "L", "RGB" or "F" image as float32 (H, W, C) in [0, 1]."""
    if image.mode == "F":
        x = np.clip(np.asarray(image, dtype=np.float32) * (1 / 255), 0.0, 1.0)
    else:
        x = np.asarray(image).astype(np.float32) * (1 / 255)
    return x[:, :, None] if x.ndim == 2 else x


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1 or 3) -> (H, W, ``channels``): gray is repeated, colour becomes BT.601 luma."""
    if x.shape[2] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=2)
    return (x @ _BT601)[:, :, None]


def _quantile(sorted_values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (nearest rank) of already sorted values: one sort serves them all."""
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


def _is_dark_on_light(ring: np.ndarray, values: np.ndarray) -> bool:
    background = _quantile(ring, 0.5)
    return background - _quantile(values, 0.01) > _quantile(values, 0.99) - background


def like_mnist(gray: np.ndarray, invert: Invert) -> tuple[np.ndarray, bool]:
    """A (H, W) gray picture in MNIST's polarity and range; returns it and whether it was inverted.

    MNIST digits are light strokes on an exactly black background, with stroke cores at
    full white. Photos and scans are rarely like that: dark ink on light paper, a gray
    or tinted background, washed-out strokes. Inverting fixes the polarity; stretching
    maps the background to 0 and the strokes to 1 so that a digit on mid-gray or under
    dim light reaches the model looking like the ones it learnt from. The black point
    is a high percentile of the border rather than its median so that background noise
    and mild gradients go to zero, as in MNIST, instead of to faint gray speckle.
    (Measured on tests/data/digits with LeNet-5 after one epoch of MNIST, seeds 0, 1, 2:
    14/14 right each; without the stretch 12, 13, 11; without the inversion 7, 6, 5.)
    """
    ring = np.sort(border_ring(gray[:, :, None]).ravel())
    values = np.sort(gray.ravel())
    inverted = _is_dark_on_light(ring, values) if invert == "auto" else invert == "yes"
    if inverted:
        gray = 1.0 - gray
        # Inverting reverses the order: the q quantile becomes 1 - the (1 - q) one.
        ring, values = 1.0 - ring[::-1], 1.0 - values[::-1]
    black = _quantile(ring, 0.9)
    white = _quantile(values, 0.99)
    if white - black > MIN_CONTRAST:
        gray = np.clip((gray - black) / (white - black), 0.0, 1.0)
    return gray.astype(np.float32, copy=False), inverted


def pad_center(x: np.ndarray, size: tuple[int, int], fill: np.ndarray) -> np.ndarray:
    """Place (h, w, C) ``x`` in the middle of a ``size`` canvas of colour ``fill``."""
    h, w, c = x.shape
    th, tw = size
    if (h, w) == (th, tw):
        return x
    canvas = np.empty((th, tw, c), dtype=np.float32)
    canvas[:] = fill
    top, left = (th - h) // 2, (tw - w) // 2
    canvas[top : top + h, left : left + w] = x
    return canvas


def centre_mass(x: np.ndarray) -> np.ndarray:
    """Shift (H, W, 1) ``x`` by whole pixels so its centre of mass is at (H/2, W/2).

    That is MNIST's (14.0, 14.0) in its 28x28 frame (measured: 14.0 ± 0.3 on the test
    set), i.e. (16, 16) once padded to 32x32. What moves out of the frame is background.
    """
    mass = x[:, :, 0]
    total = float(mass.sum())
    if total <= 0:
        return x
    h, w = mass.shape
    cy = float(mass.sum(axis=1) @ np.arange(h)) / total
    cx = float(mass.sum(axis=0) @ np.arange(w)) / total
    dy, dx = round(h / 2 - cy), round(w / 2 - cx)
    if dy == 0 and dx == 0:
        return x
    out = np.zeros_like(x)
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[dst_y, dst_x] = x[src_y, src_x]
    return out
