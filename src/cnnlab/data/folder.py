"""Read a folder of class folders of images (or a tar of one) into uint8 arrays.

Decoding tens of thousands of small images takes seconds, so the decoded arrays
are cached as .npy files keyed by the source's file list, sizes and mtimes: any
change to the images means a fresh decode, and an unchanged source loads in a
fraction of a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import posixpath
import re
import struct
import tarfile
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import track

from cnnlab.atomic import atomic_write, atomic_write_text
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
TEST_SPLIT_SEED = 0

# Bump when decoding changes, so caches written by older code are not reused.
_CACHE_VERSION = 1
_SPLITS = ("train", "test")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_LAYOUT_HELP = (
    "expected root/<class>/<image> or root/train/<class>/<image> + root/test/<class>/<image> "
    f"({', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))}), as a folder or a .tar/.tar.gz/.tgz"
)
# Only the decoders for IMAGE_EXTENSIONS: Image.open then skips probing every other format.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")

_log = logging.getLogger(__name__)

Parts = tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    """One image file: where it sits under the root, and its bytes or its path on disk."""

    parts: Parts
    payload: bytes | str
    display: str


@dataclass(frozen=True)
class _Listing:
    """Every non-hidden image file and folder under the root, as relative path parts."""

    files: list[_Entry]
    folders: set[Parts]


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
    the file system's listing order. ``size`` (H, W) and ``channels`` default to
    the first image's. Without train/test folders a stratified ``test_fraction`` of
    each class (seed 0) becomes the test split.
    """
    root = Path(path)
    name = name or _default_name(root)
    target_size = _check_size(size)
    _check_options(channels, test_fraction)
    if not root.exists():
        raise DataError(f"{name}: {root} does not exist; {_LAYOUT_HELP}")
    listing, fingerprint = (
        _list_folder(root, name) if root.is_dir() else (None, _file_fingerprint(root))
    )
    options = {"size": target_size, "channels": channels, "test_fraction": test_fraction}
    cache = _cache_folder(
        Path(cache_dir) if cache_dir else default_cache_dir(), root, fingerprint, options
    )
    cached = _load_cache(cache, name)
    if cached is not None:
        return cached
    started = time.perf_counter()
    if listing is None:
        listing = _list_tar(root, name)
    dataset = _decode_dataset(root, listing, target_size, channels, test_fraction, name)
    _log.info(
        "%s: decoded %d images in %.1f s",
        name,
        len(dataset.train) + len(dataset.test),
        time.perf_counter() - started,
    )
    _save_cache(cache, dataset)
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


# --- listing a folder or a tar -------------------------------------------------------------


def _is_image(file_name: str) -> bool:
    return os.path.splitext(file_name)[1].lower() in IMAGE_EXTENSIONS


def _list_folder(root: Path, name: str) -> tuple[_Listing, list[tuple[str, int, int]]]:
    """List image files and folders, and each image's (path, size, mtime) for the cache key.

    Hidden entries (.git, .ipynb_checkpoints, macOS ._x.jpg) are skipped; symlinked
    folders are followed once each. Plain strings and os.scandir, because pathlib
    objects made listing 60,000 files take seconds.
    """
    files, folders, fingerprint = [], set(), []
    pending: list[tuple[str, Parts]] = [(str(root), ())]
    seen = {_inode(str(root))}
    while pending:
        here, rel = pending.pop()
        with os.scandir(here) as items:
            for item in items:
                if item.name.startswith("."):
                    continue
                parts = (*rel, item.name)
                if item.is_dir():
                    inode = _inode(item.path)
                    if inode not in seen:
                        seen.add(inode)
                        folders.add(parts)
                        pending.append((item.path, parts))
                elif _is_image(item.name):
                    stat = _stat(item, name)
                    files.append(_Entry(parts, item.path, item.path))
                    fingerprint.append(("/".join(parts), stat.st_size, stat.st_mtime_ns))
    return _Listing(files, folders), sorted(fingerprint)


def _inode(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino)


def _stat(item: os.DirEntry[str], name: str) -> os.stat_result:
    """Stat an image file; a dangling symlink is a broken image, not something to skip."""
    try:
        return item.stat()
    except OSError as exc:
        raise DataError(
            f"{name}: {item.path} cannot be read ({exc.strerror}); fix or delete it"
        ) from exc


def _list_tar(path: Path, name: str) -> _Listing:
    """Stream the tar once, keeping image bytes in memory (smaller than the decoded pixels).

    Hard and symbolic links to images in the archive count as images, as they do in
    a folder; their targets may come later in the stream, so links are resolved last.
    """
    files, folders = [], set()
    data_by_name: dict[str, bytes] = {}
    links: list[tuple[Parts, str, str]] = []
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                parts = _member_parts(member.name)
                if not parts:
                    continue
                folders.update(parts[:i] for i in range(1, len(parts)))
                display = f"{member.name} in {path}"
                if member.isdir():
                    folders.add(parts)
                elif not _is_image(parts[-1]):
                    continue
                elif member.isfile():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    data_by_name["/".join(parts)] = data
                    files.append(_Entry(parts, data, display))
                elif member.islnk() or member.issym():
                    links.append((parts, _link_target(member), display))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{name}: {path} is not a readable tar archive ({exc}); re-download or re-create it "
            f"({_LAYOUT_HELP})"
        ) from exc
    for parts, target, display in links:
        if target not in data_by_name:
            raise DataError(
                f"{name}: {display} links to {target}, which is not an image in the archive; "
                f"re-create the tar with links dereferenced (tar -h)"
            )
        files.append(_Entry(parts, data_by_name[target], display))
    return _Listing(files, folders)


def _link_target(member: tarfile.TarInfo) -> str:
    """The archive name a link points at: hard links name it, symlinks are relative."""
    base = "" if member.islnk() else posixpath.dirname(member.name)
    return "/".join(_member_parts(posixpath.normpath(posixpath.join(base, member.linkname))))


def _member_parts(member_name: str) -> Parts:
    """Split a member name into path parts; empty for hidden files and odd names like ``..``."""
    parts = tuple(p for p in PurePosixPath(member_name).parts if p not in (".", "/"))
    return () if any(p.startswith(".") for p in parts) else parts


# --- layout: wrapper folder, splits, classes -----------------------------------------------


def _subfolders(listing: _Listing, parent: Parts) -> list[str]:
    return sorted(
        {
            f[len(parent)]
            for f in listing.folders
            if len(f) > len(parent) and f[: len(parent)] == parent
        }
    )


def _images_under(listing: _Listing, parent: Parts, directly: bool = False) -> list[_Entry]:
    depth = len(parent)
    return [
        e
        for e in listing.files
        if e.parts[:depth] == parent
        and (len(e.parts) == depth + 1 if directly else len(e.parts) > depth)
    ]


def _strip_wrapper(listing: _Listing) -> Parts:
    """Descend through lone folders that hold no images themselves (``cifar10/train/...``).

    A lone folder with images directly inside is a class, not a wrapper.
    """
    prefix: Parts = ()
    while True:
        children = _subfolders(listing, prefix)
        if (
            len(children) != 1
            or children[0] in _SPLITS
            or _images_under(listing, prefix, directly=True)
        ):
            return prefix
        child = (*prefix, children[0])
        if _images_under(listing, child, directly=True):
            return prefix
        prefix = child


def _split_layout(listing: _Listing, where: str, name: str) -> dict[str, dict[str, list[_Entry]]]:
    """Map split -> class -> entries; the flat layout gives the single split "all"."""
    root = _strip_wrapper(listing)
    children = _subfolders(listing, root)
    if not any(s in children for s in _SPLITS):
        return {"all": _classes_in(listing, root, where, name)}
    present = [s for s in _SPLITS if s in children]
    if len(present) == 1:
        other = next(s for s in _SPLITS if s not in present)
        raise DataError(f"{name}: {where} has {present[0]}/ but no {other}/ folder; {_LAYOUT_HELP}")
    others = [c for c in children if c not in _SPLITS and _images_under(listing, (*root, c))]
    if others:
        raise DataError(
            f"{name}: {where} has folders besides train/ and test/ ({', '.join(others)}); "
            f"move or remove them ({_LAYOUT_HELP})"
        )
    return {s: _classes_in(listing, (*root, s), where, name) for s in _SPLITS}


def _classes_in(listing: _Listing, parent: Parts, where: str, name: str) -> dict[str, list[_Entry]]:
    """Class folder -> its images (at any depth), in natural file-name order."""
    depth = len(parent)
    classes: dict[str, list[_Entry]] = {cls: [] for cls in _subfolders(listing, parent)}
    for entry in listing.files:
        if entry.parts[:depth] != parent:
            continue
        if len(entry.parts) == depth + 1:
            raise DataError(f"{name}: {entry.display} is not inside a class folder; {_LAYOUT_HELP}")
        classes[entry.parts[depth]].append(entry)
    if not classes:
        raise DataError(f"{name}: {where} holds no class folders with images; {_LAYOUT_HELP}")
    for cls, entries in classes.items():
        if not entries:
            folder = "/".join((*parent, cls))
            raise DataError(
                f"{name}: class folder {folder} in {where} holds no images; add images or remove it"
            )
        entries.sort(key=lambda e: _natural_key("/".join(e.parts[depth + 1 :])))
    return classes


def _natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Order ``img2`` before ``img10``; re.split puts digit runs at odd indices, so types align."""
    pieces = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(pieces)), text


def _carve_test(
    per_class: dict[str, list[_Entry]], fraction: float
) -> tuple[dict[str, list[_Entry]], dict[str, list[_Entry]]]:
    """Hold out round(fraction * n) of each class, keeping at least one training image."""
    rng = np.random.default_rng(TEST_SPLIT_SEED)
    train, test = {}, {}
    for cls, entries in per_class.items():
        n_test = min(len(entries) - 1, math.floor(len(entries) * fraction + 0.5))
        held_out = set(rng.permutation(len(entries))[:n_test].tolist())
        train[cls] = [e for i, e in enumerate(entries) if i not in held_out]
        test[cls] = [e for i, e in enumerate(entries) if i in held_out]
    return train, test


# --- decoding ------------------------------------------------------------------------------


def _decode_dataset(
    root: Path,
    listing: _Listing,
    size: tuple[int, int] | None,
    channels: int | None,
    test_fraction: float,
    name: str,
) -> DatasetArrays:
    layout = _split_layout(listing, str(root), name)
    if "all" in layout:
        train, test = _carve_test(layout["all"], test_fraction)
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
    target = _choose_target(entries[0], size, channels, name)
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
    per_class: dict[str, list[_Entry]], classes: list[str]
) -> tuple[list[_Entry], np.ndarray]:
    entries: list[_Entry] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        entries += per_class.get(cls, [])
        labels += [index] * len(per_class.get(cls, []))
    return entries, np.asarray(labels, dtype=np.int64)


def _choose_target(
    first: _Entry, size: tuple[int, int] | None, channels: int | None, name: str
) -> _Target:
    """Fill in what the caller left open from the first image, as the docs promise."""
    with _open(first, name) as image:
        return _Target(
            channels or (1 if image.mode in _GREY_MODES else 3),
            size or (image.height, image.width),
        )


def _decode_all(entries: Sequence[_Entry], target: _Target, name: str) -> np.ndarray:
    """Decode one image at a time into a preallocated array.

    A process pool over 2 cores measured no faster (pickling the pixels back costs
    what the second core saves), and a pool re-imports unguarded main scripts.
    """
    h, w = target.size
    out = np.empty((len(entries), target.channels, h, w), dtype=np.uint8)
    # First decodes of big folders take tens of seconds: show a bar on a terminal.
    numbered = track(
        enumerate(entries),
        total=len(entries),
        description=f"{name}: decoding images (cached afterwards)",
        console=Console(stderr=True),
        transient=True,
        disable=len(entries) < 2000,
    )
    for i, entry in numbered:
        with _open(entry, name) as image:
            pixels = np.asarray(_convert(image, target))
        out[i] = pixels[None] if target.channels == 1 else pixels.transpose(2, 0, 1)
    return out


def _open(entry: _Entry, name: str) -> Image.Image:
    source = io.BytesIO(entry.payload) if isinstance(entry.payload, bytes) else entry.payload
    try:
        image = Image.open(source, formats=_PIL_FORMATS)
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
            f"{name}: {entry.display} is not a readable image ({exc}); replace or delete it"
        ) from exc
    return image


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


# --- cache ---------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$CNNLAB_CACHE``, else ``$XDG_CACHE_HOME/cnnlab/decoded`` (``~/.cache/...``)."""
    env = os.environ.get("CNNLAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab" / "decoded"


def _file_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    """A tar is fingerprinted by its own size and mtime: listing it means reading it all."""
    stat = path.stat()
    return [(path.name, stat.st_size, stat.st_mtime_ns)]


def _cache_folder(
    cache_dir: Path, root: Path, fingerprint: list[tuple[str, int, int]], options: dict[str, object]
) -> Path:
    key = {
        "version": _CACHE_VERSION,
        "path": str(root.resolve()),
        "files": fingerprint,
        **options,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir / digest[:32]


def _cache_files(folder: Path) -> dict[str, Path]:
    return {
        f"{s}_{kind}": folder / f"{s}_{kind}.npy" for s in _SPLITS for kind in ("images", "labels")
    }


def _load_cache(folder: Path, name: str) -> DatasetArrays | None:
    """Return the cached dataset, or None when there is none or it cannot be read."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = {key: np.load(path) for key, path in _cache_files(folder).items()}
        return DatasetArrays(
            name=name,
            train=Split(arrays["train_images"], arrays["train_labels"]),
            test=Split(arrays["test_images"], arrays["test_labels"]),
            classes=list(meta["classes"]),
            source=str(meta["source"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("%s: ignoring unreadable cache %s (%s); decoding again", name, folder, exc)
        return None


def _save_cache(folder: Path, dataset: DatasetArrays) -> None:
    """Write the arrays, then meta.json last: its presence means the cache is complete."""
    arrays = {
        "train_images": dataset.train.images,
        "train_labels": dataset.train.labels,
        "test_images": dataset.test.images,
        "test_labels": dataset.test.labels,
    }
    try:
        (folder / "meta.json").unlink(missing_ok=True)
        for key, path in _cache_files(folder).items():
            atomic_write(path, lambda f, a=arrays[key]: np.save(f, a))
        atomic_write_text(
            folder / "meta.json", json.dumps({"classes": dataset.classes, "source": dataset.source})
        )
    except OSError as exc:
        warnings.warn(
            f"{dataset.name}: could not write the decoded-image cache in {folder} ({exc}); "
            f"the next load will decode again (set CNNLAB_CACHE to a writable folder)",
            stacklevel=3,
        )
