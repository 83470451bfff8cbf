"""Listing an image folder or a tar of one: its entries, its class folders, its splits."""

from __future__ import annotations

import math
import os
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from cnnlab.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
TEST_SPLIT_SEED = 0
SPLITS = ("train", "test")
LAYOUT_HELP = (
    "expected root/<class>/<image> or root/train/<class>/<image> + root/test/<class>/<image> "
    f"({', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))}), as a folder or a .tar/.tar.gz/.tgz"
)

Parts = tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One image file: where it sits under the root, and its bytes or its path on disk."""

    parts: Parts
    payload: bytes | str
    display: str


@dataclass(frozen=True)
class Listing:
    """Every non-hidden image file and folder under the root, as relative path parts."""

    files: list[Entry]
    folders: set[Parts]


# --- listing a folder or a tar -------------------------------------------------------------


def is_image(file_name: str) -> bool:
    return os.path.splitext(file_name)[1].lower() in IMAGE_EXTENSIONS


def list_folder(root: Path, name: str) -> tuple[Listing, list[tuple[str, int, int]]]:
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
                elif is_image(item.name):
                    stat = _stat(item, name)
                    files.append(Entry(parts, item.path, item.path))
                    fingerprint.append(("/".join(parts), stat.st_size, stat.st_mtime_ns))
    return Listing(files, folders), sorted(fingerprint)


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


def list_tar(path: Path, name: str) -> Listing:
    """Stream the tar once, keeping image bytes in memory (smaller than the decoded pixels).

    Hard and symbolic links to images in the archive count as images, as they do in
    a folder; their targets may come later in the stream, so links are resolved last.
    """
    files, folders = [], set()
    data_by_name: dict[str, bytes] = {}
    links: list[tuple[Parts, str, str, str]] = []
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
                elif not is_image(parts[-1]):
                    continue
                elif member.isfile():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    data_by_name["/".join(parts)] = data
                    files.append(Entry(parts, data, display))
                elif member.islnk() or member.issym():
                    links.append((parts, _link_target(member), member.linkname, display))
    except DataError:
        raise
    except Exception as exc:  # a damaged stream makes tarfile/gzip raise TypeError and others
        # tarfile's messages can hold the repr of its internal stream objects.
        reason = (
            re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the stream", str(exc))
            or type(exc).__name__
        )
        raise DataError(
            f"{name}: {path} is not a readable tar archive ({reason}); re-download or re-create it "
            f"({LAYOUT_HELP})"
        ) from exc
    for parts, target, linkname, display in links:
        if target not in data_by_name:
            raise DataError(
                f"{name}: {display} links to {linkname!r}, which is not an image in the archive; "
                f"re-create the tar with links dereferenced (tar -h)"
            )
        files.append(Entry(parts, data_by_name[target], display))
    return Listing(files, folders)


def _link_target(member: tarfile.TarInfo) -> str:
    """The archive name a link points at: hard links name it, symlinks are relative."""
    base = "" if member.islnk() else posixpath.dirname(member.name)
    return "/".join(_member_parts(posixpath.normpath(posixpath.join(base, member.linkname))))


def _member_parts(member_name: str) -> Parts:
    """Split a member name into path parts; empty for hidden files and odd names like ``..``."""
    parts = tuple(p for p in PurePosixPath(member_name).parts if p not in (".", "/"))
    return () if any(p.startswith(".") for p in parts) else parts


# --- layout: wrapper folder, splits, classes -----------------------------------------------


def _subfolders(listing: Listing, parent: Parts) -> list[str]:
    return sorted(
        {
            f[len(parent)]
            for f in listing.folders
            if len(f) > len(parent) and f[: len(parent)] == parent
        }
    )


def _images_under(listing: Listing, parent: Parts, directly: bool = False) -> list[Entry]:
    depth = len(parent)
    return [
        e
        for e in listing.files
        if e.parts[:depth] == parent
        and (len(e.parts) == depth + 1 if directly else len(e.parts) > depth)
    ]


def _strip_wrapper(listing: Listing) -> Parts:
    """Descend through lone folders that hold no images themselves (``cifar10/train/...``).

    A lone folder with images directly inside is a class, not a wrapper.
    """
    prefix: Parts = ()
    while True:
        children = _subfolders(listing, prefix)
        if (
            len(children) != 1
            or children[0] in SPLITS
            or _images_under(listing, prefix, directly=True)
        ):
            return prefix
        child = (*prefix, children[0])
        if _images_under(listing, child, directly=True):
            return prefix
        prefix = child


def split_layout(listing: Listing, where: str, name: str) -> dict[str, dict[str, list[Entry]]]:
    """Map split -> class -> entries; the flat layout gives the single split "all"."""
    root = _strip_wrapper(listing)
    children = _subfolders(listing, root)
    if not any(s in children for s in SPLITS):
        return {"all": _classes_in(listing, root, where, name)}
    present = [s for s in SPLITS if s in children]
    if len(present) == 1:
        other = next(s for s in SPLITS if s not in present)
        raise DataError(f"{name}: {where} has {present[0]}/ but no {other}/ folder; {LAYOUT_HELP}")
    others = [c for c in children if c not in SPLITS and _images_under(listing, (*root, c))]
    if others:
        raise DataError(
            f"{name}: {where} has folders besides train/ and test/ ({', '.join(others)}); "
            f"move or remove them ({LAYOUT_HELP})"
        )
    return {s: _classes_in(listing, (*root, s), where, name) for s in SPLITS}


def _classes_in(listing: Listing, parent: Parts, where: str, name: str) -> dict[str, list[Entry]]:
    """Class folder -> its images (at any depth), in natural file-name order."""
    depth = len(parent)
    classes: dict[str, list[Entry]] = {cls: [] for cls in _subfolders(listing, parent)}
    for entry in listing.files:
        if entry.parts[:depth] != parent:
            continue
        if len(entry.parts) == depth + 1:
            raise DataError(f"{name}: {entry.display} is not inside a class folder; {LAYOUT_HELP}")
        classes[entry.parts[depth]].append(entry)
    if not classes:
        raise DataError(f"{name}: {where} holds no class folders with images; {LAYOUT_HELP}")
    for cls, entries in classes.items():
        if not entries:
            folder = "/".join((*parent, cls))
            raise DataError(
                f"{name}: class folder {folder} in {where} holds no images; add images or remove it"
            )
        entries.sort(key=lambda e: natural_key("/".join(e.parts[depth + 1 :])))
    return classes


def natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Order ``img2`` before ``img10``; re.split puts digit runs at odd indices, so types align."""
    pieces = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(pieces)), text


def carve_test(
    per_class: dict[str, list[Entry]], fraction: float
) -> tuple[dict[str, list[Entry]], dict[str, list[Entry]]]:
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
