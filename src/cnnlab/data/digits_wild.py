"""``digits-wild``: MNIST, printed digits and SVHN as one 3-channel digit dataset.

Seed project 000 trained its MNIST CNN on recoloured MNIST plus SVHN so that it would
"work on various images". This composite gives such a model its training data and, above
all, a test set that says where it works: the test split is the concatenation of one
held-out set per domain, in this order, with ``Split.domains`` naming each image's:

- ``mnist``: the 10k MNIST test digits, gray in 3 channels;
- ``mnist-recolored``: the same digits recoloured once, with a fixed seed, through the
  ``recolor``, ``texture`` and ``blur`` augmentations (:data:`TEST_RECOLOR`);
- ``printed``: rendered digits (:mod:`cnnlab.data.printed`) in the fonts training uses, a
  draw disjoint from training;
- ``printed-unseen``: rendered digits in font families training never sees (a fixed,
  seeded split of this machine's fonts), in their lining figures: the domain that says
  whether a model reads;
- ``printed-oldstyle``: the old-style (text) figures of those unseen families, drawn at
  their own size and place on the line (a 0 as small as an ``o``, a 7 hanging below the
  baseline), when any unseen family has them;
- ``handwriting-fonts``: digits in handwriting-style fonts (never trained on): hands
  other than MNIST's writers, when such fonts are installed;
- ``svhn``: the SVHN test digits, when SVHN is found.

The name takes options: ``digits-wild:size=28,mnist=1,printed=0.5,svhn=2,styles=basic``.
``size`` is 32 (MNIST zero-padded, as LeNet-5 wants) or 28 (SVHN resized); each part's
weight scales how much of it the TRAIN split holds: 0 leaves it out, 0.5 keeps a fixed
class-balanced half, 2 repeats it twice. ``styles`` is how varied the printed training
digits are (``full``, the default, or ``basic``: :mod:`cnnlab.data.printed_style`); the
test domains are always ``full`` less its training-only effects (plates, embossing).
MNIST must be present; SVHN is optional.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.config.dataset import DIGITS_WILD, DIGITS_WILD_SIZES, parse_dataset
from cnnlab.data import font_pool, printed
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.augment import build_augment
from cnnlab.data.cache import entry_folder, load_split, save_split
from cnnlab.data.formats import read_svhn_split
from cnnlab.data.loader import pad_to, stratified_split
from cnnlab.data.printed_style import STYLES
from cnnlab.errors import ConfigError

NAME = DIGITS_WILD
CLASSES = [str(d) for d in range(10)]
DOMAINS = (
    "mnist", "mnist-recolored", "printed", "printed-unseen", "printed-oldstyle",
    "handwriting-fonts", "svhn",
)  # fmt: skip
# The printed test domains and the split each is drawn from: one per side of the font
# pool ("train" draws from the seen side too, for training).
PRINTED_DOMAINS = {
    font_pool.SIDE_DOMAINS[side]: split
    for split, (_, side) in printed.SPLITS.items()
    if split != "train"
}
SIZES = DIGITS_WILD_SIZES

# How many printed digits each split holds; tests lower these to stay fast.
PRINTED_TRAIN = printed.DEFAULT_TRAIN
PRINTED_TEST = printed.DEFAULT_TEST

# The fixed recolouring of the mnist-recolored test domain: the same ops (and strengths) a
# model would train with, drawn once from a fixed seed so every run tests on the same images.
TEST_RECOLOR = "recolor,texture=0.3,blur=1"
TEST_RECOLOR_SEED = 0
# Bump when those ops draw or paint differently, so cached recoloured sets are not reused.
TEST_RECOLOR_VERSION = 1
# Which images a fractional weight keeps (stratified, so classes stay balanced).
SUBSET_SEED = 0

_CHUNK = 2048

_log = logging.getLogger(__name__)
_told_no_svhn = False  # say once per process that SVHN is missing, not on every load


@dataclass(frozen=True)
class Parts:
    """What the composite is built from, handed in by the registry (no import back)."""

    mnist: DatasetArrays
    svhn_dir: Path | None  # the folder holding train_32x32.mat / test_32x32.mat, if found
    svhn_searched: list[Path]


def load_digits_wild(
    name: str,
    parts: Parts,
    *,
    printed_train: int | None = None,
    printed_test: int | None = None,
    cache_dir: Path | None = None,
) -> DatasetArrays:
    """Build the composite for ``name`` (``digits-wild`` or ``digits-wild:options``).

    ``printed_train`` / ``printed_test`` default to PRINTED_TRAIN / PRINTED_TEST; printed
    digits are rendered once and cached (``cache_dir``, else ``$CNNLAB_CACHE``).
    """
    options = parse_dataset(name).options
    if options.mnist + options.printed + options.svhn == 0:
        raise ConfigError(f"{NAME}: every weight is 0 in {name!r}, so nothing is left to train on")
    mnist, svhn_dir = parts.mnist, parts.svhn_dir
    if svhn_dir is None and options.svhn > 0:
        _say_no_svhn(parts.svhn_searched)

    size = options.size
    n_train = PRINTED_TRAIN if printed_train is None else printed_train
    n_test = PRINTED_TEST if printed_test is None else printed_test
    # MNIST stays 1-channel until assembly, which broadcasts it into 3: one copy, not two.
    mnist_train, mnist_test = (
        s.with_images(pad_to(s.images, (size, size))) for s in (mnist.train, mnist.test)
    )
    test = {
        "mnist": mnist_test,
        "mnist-recolored": _recolored(mnist_test, cache_dir),
        **{
            domain: printed.load_printed_digits(split, n_test, size, cache_dir)
            for domain, split in PRINTED_DOMAINS.items()
        },
    }
    train = {"mnist": (mnist_train, options.mnist)}
    if options.printed > 0:
        style = STYLES[options.styles]
        part = printed.load_printed_digits("train", n_train, size, cache_dir, style)
        train["printed"] = (part, options.printed)
    if svhn_dir is not None:
        if options.svhn > 0:
            part = _svhn_images(read_svhn_split(svhn_dir / "train_32x32.mat"), size)
            train["svhn"] = (part, options.svhn)
        test["svhn"] = _svhn_images(read_svhn_split(svhn_dir / "test_32x32.mat"), size)
    # A domain without images (no old-style or handwriting fonts, no SVHN) is left out.
    names = [d for d in DOMAINS if d in test and len(test[d]) > 0]
    domain = {d: i for i, d in enumerate(names)}
    train_parts = [_Part(domain[d], split, _weighted(split, w)) for d, (split, w) in train.items()]
    return _composite(name, options.styles, mnist, svhn_dir, names, train_parts, [
        _Part(domain[d], test[d]) for d in names
    ])  # fmt: skip


def _composite(
    name: str,
    styles: str,
    mnist: DatasetArrays,
    svhn_dir: Path | None,
    names: list[str],
    train_parts: list[_Part],
    test_parts: list[_Part],
) -> DatasetArrays:
    size = test_parts[0].split.images.shape[-1]
    train = _assemble(train_parts, size)
    if len(train) == 0:
        why = " (svhn not found)" if svhn_dir is None else ""
        raise ConfigError(
            f"{NAME}: {name!r} leaves the train split empty{why}; "
            "give mnist or printed a weight above 0"
        )
    return DatasetArrays(
        name=name,
        train=train,
        test=_assemble(test_parts, size),
        classes=list(CLASSES),
        source="; ".join(
            [
                f"mnist: {mnist.source}",
                f"printed: rendered from {font_pool.pool_summary()} "
                f"(generator v{printed.GENERATOR_VERSION}, training styles {styles})",
                f"svhn: {svhn_dir}" if svhn_dir is not None else "svhn: not found",
            ]
        ),
        domain_names=names,
    )


def _say_no_svhn(searched: list[Path]) -> None:
    global _told_no_svhn
    if _told_no_svhn:
        return
    _told_no_svhn = True
    places = ", ".join(str(p) for p in searched)
    _log.warning(
        "%s: svhn not found (searched %s), so it trains and tests without SVHN; put "
        "train_32x32.mat and test_32x32.mat in %s to add it, or write %s:svhn=0 to silence this",
        NAME,
        places,
        searched[0] if searched else "<data dir>/svhn",
        NAME,
    )


def _svhn_images(split: Split, size: int) -> Split:
    """SVHN as is at 32; at 28 resized with antialiasing, in chunks to bound the float copy."""
    if split.images.shape[-1] == size:
        return split
    out = np.empty((len(split), 3, size, size), np.uint8)
    for start in range(0, len(split), _CHUNK):
        x = torch.from_numpy(split.images[start : start + _CHUNK]).float()
        y = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + len(x)] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return split.with_images(out)


def _recolored(split: Split, cache_dir: Path | None) -> Split:
    """The mnist-recolored domain, cached: recolouring 10k digits takes 1-2 s on one core."""
    key = {
        "recolor": TEST_RECOLOR,
        "version": TEST_RECOLOR_VERSION,
        "seed": TEST_RECOLOR_SEED,
        "torch": torch.__version__,
        "images": hashlib.sha256(np.ascontiguousarray(split.images).data).hexdigest(),
        "shape": list(split.images.shape),
    }
    folder = entry_folder("mnist-recolored", key, cache_dir)
    cached = load_split(folder, f"{NAME} mnist-recolored")
    if cached is not None and np.array_equal(cached.labels, split.labels):
        return split.with_images(cached.images)
    recolored = split.with_images(recolor_once(split.images))
    save_split(folder, recolored, f"{NAME} mnist-recolored")
    return recolored


def recolor_once(images: np.ndarray) -> np.ndarray:
    """The fixed recolouring behind ``mnist-recolored``: TEST_RECOLOR drawn from a set seed.

    uint8 (N, 1 or 3, H, W) gray in, uint8 (N, 3, H, W) colour out; the same input always
    gives the same bytes.
    """
    augment = build_augment(TEST_RECOLOR)
    generator = torch.Generator().manual_seed(TEST_RECOLOR_SEED)
    out = np.empty((len(images), 3, *images.shape[2:]), np.uint8)
    for start in range(0, len(images), _CHUNK):
        x = torch.from_numpy(images[start : start + _CHUNK]).float().div_(255)
        y = augment(x, generator)
        out[start : start + len(x)] = y.mul_(255).round_().to(torch.uint8).numpy()
    return out


def _weighted(split: Split, weight: float) -> np.ndarray | None:
    """The images ``weight`` copies of a split hold; None means every image once.

    Whole copies first, then a fixed class-balanced fraction (the same one on every load).
    """
    if weight == 1:
        return None
    whole, fraction = divmod(weight, 1.0)
    index = [np.arange(len(split))] * int(whole)
    if fraction > 0:
        _, held = stratified_split(split.labels, fraction, seed=SUBSET_SEED)
        index.append(held)
    return np.concatenate(index) if index else np.arange(0)


@dataclass(frozen=True)
class _Part:
    """One domain's contribution to a split: images with 1 (gray) or 3 channels."""

    domain: int
    split: Split
    index: np.ndarray | None = None  # which images, repeats allowed; None = all once

    def __len__(self) -> int:
        return len(self.split) if self.index is None else len(self.index)


def _assemble(parts: list[_Part], size: int) -> Split:
    """Concatenate parts into one preallocated 3-channel array; gray parts broadcast."""
    images = np.empty((sum(len(p) for p in parts), 3, size, size), np.uint8)
    labels, domains = [], []
    start = 0
    for part in parts:
        chosen = part.split if part.index is None else part.split.subset(part.index)
        images[start : start + len(chosen)] = chosen.images
        labels.append(chosen.labels)
        domains.append(np.full(len(chosen), part.domain, np.int64))
        start += len(chosen)
    return Split(images, np.concatenate(labels), np.concatenate(domains))
