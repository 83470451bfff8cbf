"""Find the figure in a larger picture: the largest foreground component against the
background, so that a digit filling a fifth of a photo is cropped before it is scaled to
the model's input instead of arriving a few pixels tall.

The background is the median colour of the picture's border; foreground is what differs
from it by more than a quarter of the way to the picture's most different colour (in
RGB, so a red digit on a green wall of the same brightness is found). Strokes a pixel or two apart
are joined first, so a broken 5 or a dotted stroke counts as one figure.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage

Locate = Literal["auto", "on", "off"]

# The datasets whose pictures hold one figure on a plain ground (digits), where "auto"
# looks for it; photos of objects (CIFAR) fill their frame and are left whole.
DIGIT_DATASETS = ("mnist", "digits-wild", "svhn")
# A figure whose box (with its margin) spans less than this share of the picture's width
# and height is cropped; a picture that is mostly figure already is left as it is.
CROP_BELOW = 0.6
# A foreground piece at least this share of the largest one's pixels is part of the figure.
PIECE = 0.25
# Room left around the figure, as a share of its larger side: MNIST's digits fill 20 of 28.
MARGIN = 0.2
# Foreground: farther from the border's colour than this share of the farthest colour.
# Half the way lost the pale end of a stroke under glare (tests/data/digits-wild's
# whiteboard 5 split in two).
FOREGROUND = 0.25
_WORK_SIDE = 256  # searched on a copy at most this large: enough for a figure, and fast


def wants_locate(locate: Locate, dataset: str) -> bool:
    """Whether to look for the figure: ``on``, or ``auto`` for a digit dataset's model."""
    if locate != "auto":
        return locate == "on"
    return dataset.split(":")[0] in DIGIT_DATASETS


def figure_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the figure with its margin, in the picture's pixels:
    the largest foreground piece and every piece at least PIECE of its size; None when
    there is no figure to crop to (blank, or the figure fills the picture)."""
    rgb = image.convert("RGB")
    scale = min(1.0, _WORK_SIDE / max(rgb.size))
    small = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))))
    pixels = np.asarray(small, dtype=np.float32) / 255
    mask = _foreground(pixels)
    if mask is None:
        return None
    # mask holds at least the farthest pixel, so there is at least one piece.
    labels, count = ndimage.label(ndimage.binary_closing(mask, iterations=2) | mask)
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    # A figure broken by glare or an embossed highlight is several large pieces: they
    # all belong to it, specks and texture do not.
    pieces = [
        box
        for box, size in zip(ndimage.find_objects(labels), sizes, strict=True)
        if size >= PIECE * sizes.max()
    ]
    y0, y1 = min(r.start for r, _ in pieces), max(r.stop for r, _ in pieces)
    x0, x1 = min(c.start for _, c in pieces), max(c.stop for _, c in pieces)
    height, width = pixels.shape[:2]
    pad = MARGIN * max(y1 - y0, x1 - x0)
    top, bottom = max(0.0, y0 - pad), min(height, y1 + pad)
    left, right = max(0.0, x0 - pad), min(width, x1 + pad)
    if (bottom - top) >= CROP_BELOW * height or (right - left) >= CROP_BELOW * width:
        return None
    box = (left / scale, top / scale, right / scale, bottom / scale)
    return tuple(round(v) for v in box)  # type: ignore[return-value]


def crop_to_figure(image: Image.Image) -> Image.Image:
    """The picture cropped to its figure (:func:`figure_box`), or the picture as it is."""
    box = figure_box(image)
    return image if box is None else image.crop(box)


def border_ring(x: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (about 5% of the shorter side, at least 1 px), (N, C)."""
    h, w = x.shape[:2]
    r = max(1, round(0.05 * min(h, w)))
    if 2 * r >= min(h, w):
        return x.reshape(-1, x.shape[2])
    parts = (x[:r], x[-r:], x[r:-r, :r], x[r:-r, -r:])
    return np.concatenate([p.reshape(-1, x.shape[2]) for p in parts])


def _foreground(pixels: np.ndarray) -> np.ndarray | None:
    """(H, W) bool: the pixels far from the border's colour; None for a blank picture."""
    distance = np.linalg.norm(pixels - np.median(border_ring(pixels), axis=0), axis=2)
    # The most different colour that is more than a speck: a figure may be a tiny share
    # of a large picture, so no quantile of all the pixels would find it.
    far = float(ndimage.median_filter(distance, size=3).max())
    if far < 0.15:  # nothing stands out from the ground
        return None
    return distance > FOREGROUND * far
