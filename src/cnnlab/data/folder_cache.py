"""The decoded-image cache of image folders: .npy files keyed by the source's files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from cnnlab.atomic import atomic_write, atomic_write_text, remove_stale_temporaries
from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.data.folder_listing import SPLITS

# Bump when decoding changes, so caches written by older code are not reused.
_CACHE_VERSION = 2  # 2: the common size of the images, not the first image's

_log = logging.getLogger("cnnlab.data.folder")


def default_cache_dir() -> Path:
    """``$CNNLAB_CACHE``, else ``$XDG_CACHE_HOME/cnnlab/decoded`` (``~/.cache/...``)."""
    env = os.environ.get("CNNLAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab" / "decoded"


def file_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    """A tar is fingerprinted by its own size and mtime: listing it means reading it all."""
    stat = path.stat()
    return [(path.name, stat.st_size, stat.st_mtime_ns)]


def cache_folder(
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
        f"{s}_{kind}": folder / f"{s}_{kind}.npy" for s in SPLITS for kind in ("images", "labels")
    }


def load_cache(folder: Path, name: str) -> DatasetArrays | None:
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


def save_cache(folder: Path, dataset: DatasetArrays) -> None:
    """Write the arrays, then meta.json last: its presence means the cache is complete."""
    arrays = {
        "train_images": dataset.train.images,
        "train_labels": dataset.train.labels,
        "test_images": dataset.test.images,
        "test_labels": dataset.test.labels,
    }
    try:
        # Other processes may be writing this cache now: only an hour-old leftover is stale.
        remove_stale_temporaries(folder, older_than=3600)
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
