"""Read a folder of class folders of images (or a tar of one) into uint8 arrays.

Decoding tens of thousands of small images takes seconds, so the decoded arrays
are cached as .npy files keyed by the source's file list, sizes and mtimes: any
change to the images means a fresh decode, and an unchanged source loads in a
fraction of a second.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab import heartbeat
from cnnlab.data.arrays import DatasetArrays, Split, check_splits
from cnnlab.data.folder_cache import (
    cache_folder,
    default_cache_dir,
    file_fingerprint,
    load_cache,
    save_cache,
)
from cnnlab.data.folder_listing import (
    LAYOUT_HELP,
    TEST_SPLIT_SEED,
    Entry,
    Listing,
    carve_test,
    list_folder,
    list_tar,
    split_layout,
)
from cnnlab.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Only the decoders for IMAGE_EXTENSIONS: Image.open then skips probing every other format.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Target:
    """What every decoded image is turned into: channels (1 or 3) and (H, W)."""

    channels: int
    size: tuple[int, int]


def read_image_folder(
    path: PathLike,
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    cache_dir: PathLike | None = None,
    test_fraction: float = 0.2,
    name: str | None = None,
) -> DatasetArrays:
    """Read ``root/<class>/*`` or ``root/{train,test}/<class>/*`` (a folder or a tar of one).

    Classes are the sorted class-folder names; within a split images are ordered
    class-major, then by natural file-name order, so the arrays do not depend on
    the file system's listing order. ``size`` (H, W) defaults to the most common
    size of a sample of the images, ``channels`` to the first image's. Without
    train/test folders a stratified ``test_fraction`` of each class (seed 0) becomes
    the test split.
    """
    root = Path(path)
    name = name or _default_name(root)
    target_size = _check_size(size)
    _check_options(channels, test_fraction)
    if not root.exists():
        raise DataError(f"{name}: {root} does not exist; {LAYOUT_HELP}")
    listing, fingerprint = (
        list_folder(root, name) if root.is_dir() else (None, file_fingerprint(root))
    )
    options = {"size": target_size, "channels": channels, "test_fraction": test_fraction}
    cache = cache_folder(
        Path(cache_dir) if cache_dir else default_cache_dir(), root, fingerprint, options
    )
    cached = load_cache(cache, name)
    if cached is not None:
        return cached
    started = time.perf_counter()
    if listing is None:
        listing = list_tar(root, name)
    # Checked before caching, so that a dataset refused now is refused again next time.
    dataset = check_splits(
        _decode_dataset(root, listing, target_size, channels, test_fraction, name)
    )
    _log.info(
        "%s: decoded %d images in %.1f s",
        name,
        len(dataset.train) + len(dataset.test),
        time.perf_counter() - started,
    )
    save_cache(cache, dataset)
    return dataset


def _default_name(root: Path) -> str:
    text = root.resolve().name
    for suffix in ARCHIVE_SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise ConfigError(f"image size must be a positive int or (height, width), not {size!r}")
    return (hw[0], hw[1])


def _check_options(channels: int | None, test_fraction: float) -> None:
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (greyscale) or 3 (RGB), not {channels!r}")
    if not 0 < test_fraction < 1:
        raise ConfigError(
            f"test_fraction must be between 0 and 1 (exclusive), not {test_fraction!r}"
        )


def _decode_dataset(
    root: Path,
    listing: Listing,
    size: tuple[int, int] | None,
    channels: int | None,
    test_fraction: float,
    name: str,
) -> DatasetArrays:
    layout = split_layout(listing, str(root), name)
    if "all" in layout:
        train, test = carve_test(layout["all"], test_fraction)
        how = (
            f"no train/test folders: {test_fraction:g} of each class held out as test, "
            f"seed {TEST_SPLIT_SEED}"
        )
    else:
        train, test = layout["train"], layout["test"]
        how = "train/ and test/ folders"
    classes = sorted(set(train) | set(test))
    entries, labels = _flatten(train, classes)
    test_entries, test_labels = _flatten(test, classes)
    target = _choose_target(entries + test_entries, size, channels, name)
    images = _decode_all(entries + test_entries, target, name)
    h, w = target.size
    mode = "RGB" if target.channels == 3 else "greyscale"
    return DatasetArrays(
        name=name,
        train=Split(images[: len(entries)], labels),
        test=Split(images[len(entries) :], test_labels),
        classes=classes,
        source=f"image folder {root} ({how}; {mode} {h}x{w})",
    )


def _flatten(
    per_class: dict[str, list[Entry]], classes: list[str]
) -> tuple[list[Entry], np.ndarray]:
    entries: list[Entry] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        entries += per_class.get(cls, [])
        labels += [index] * len(per_class.get(cls, []))
    return entries, np.asarray(labels, dtype=np.int64)


SIZE_SAMPLE = 256  # images whose headers decide the common size (spread over the folder)
DEFAULT_MAX_PIXELS = 4096 * 4096


def max_image_pixels() -> int:
    """The largest image decoded, in pixels: ``$CNNLAB_MAX_IMAGE_PIXELS``, else 16.8 M."""
    text = os.environ.get("CNNLAB_MAX_IMAGE_PIXELS", "")
    try:
        return int(text) if text else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ConfigError(
            f"CNNLAB_MAX_IMAGE_PIXELS={text!r} is not a whole number of pixels"
        ) from None


def _choose_target(
    entries: Sequence[Entry], size: tuple[int, int] | None, channels: int | None, name: str
) -> _Target:
    """Fill in what the caller left open: the most common size of a sample of the images
    (one odd image must not set the size of all), the first image's channels."""
    step = max(1, len(entries) // SIZE_SAMPLE)
    sizes: Counter[tuple[int, int]] = Counter()
    for entry in entries[::step][:SIZE_SAMPLE]:
        with _open(entry, name, load=False) as image:
            sizes[(image.height, image.width)] += 1
    with _open(entries[0], name, load=False) as image:
        grey = image.mode in _GREY_MODES
    return _Target(channels or (1 if grey else 3), size or sizes.most_common(1)[0][0])


def _decode_all(entries: Sequence[Entry], target: _Target, name: str) -> np.ndarray:
    """Decode one image at a time into a preallocated array.

    A process pool over 2 cores measured no faster (pickling the pixels back costs
    what the second core saves), and a pool re-imports unguarded main scripts.
    """
    h, w = target.size
    out = np.empty((len(entries), target.channels, h, w), dtype=np.uint8)
    # First decodes of big folders take tens of seconds: show a bar on a terminal.
    numbered = heartbeat.counted(
        enumerate(entries), len(entries), f"{name}: decoding images (cached afterwards)", 2000
    )
    resized: list[str] = []
    for i, entry in numbered:
        with _open(entry, name) as image:
            if (image.height, image.width) != (h, w):
                resized.append(f"{entry.display} ({image.height}x{image.width})")
            pixels = np.asarray(_convert(image, target))
        out[i] = pixels[None] if target.channels == 1 else pixels.transpose(2, 0, 1)
    if resized:
        _log.warning(
            "%s: %d image%s not %dx%d, the folder's common size, resized to it: %s%s",
            name,
            len(resized),
            "s are" if len(resized) > 1 else " is",
            h,
            w,
            ", ".join(resized[:3]),
            " ..." if len(resized) > 3 else "",
        )
    return out


def _open(entry: Entry, name: str, load: bool = True) -> Image.Image:
    """The image, decoded (``load``) or its header only; one line for what cannot be read."""
    source = io.BytesIO(entry.payload) if isinstance(entry.payload, bytes) else entry.payload
    try:
        with warnings.catch_warnings():  # the size limit below is ours, and stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=_PIL_FORMATS)
        limit = max_image_pixels()
        if image.width * image.height > limit:
            image.close()
            raise DataError(
                f"{name}: {entry.display} is {image.height}x{image.width} pixels, more than the "
                f"{limit:,} an image may have here; shrink it, remove it, or set "
                "CNNLAB_MAX_IMAGE_PIXELS to allow more"
            )
        if load:
            image.load()
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        Image.DecompressionBombError,
    ) as exc:
        raise DataError(
            f"{name}: {entry.display} is not a readable image ({_why(exc)}); replace or delete it"
        ) from exc
    return image


def _why(exc: BaseException) -> str:
    """Pillow's reason, without the in-memory file object it names for a file in a tar."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image format Pillow reads"
    return re.sub(r" <_io\.\w+ object at 0x[0-9a-f]+>", "", str(exc))


def _convert(image: Image.Image, target: _Target) -> Image.Image:
    """Turn any mode into L or RGB: transparency becomes white, 16-bit is scaled, not clipped."""
    if image.mode.startswith("I"):
        grey = np.asarray(image, dtype=np.int64).clip(0, 65535) >> 8
        image = Image.fromarray(grey.astype(np.uint8))
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    mode = "L" if target.channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    h, w = target.size
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.BILINEAR)
    return image
