"""A content-keyed .npy cache for generated splits (printed digits, the recoloured MNIST test).

Each entry is a folder named by a hash of everything that shapes its arrays, so a change to
any of it (generator version, seed, counts, fonts, input bytes) means a fresh entry rather
than a stale hit. Files are written atomically and meta.json last: its presence means the
entry is complete, and a torn or unreadable entry is regenerated, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from cnnlab.atomic import atomic_write, atomic_write_text
from cnnlab.data.arrays import Split
from cnnlab.data.folder_cache import default_cache_dir

_log = logging.getLogger(__name__)


def entry_folder(prefix: str, key: dict[str, object], cache_dir: Path | None = None) -> Path:
    """``<cache dir>/<prefix>-<hash of key>``; ``cache_dir`` defaults to ``$CNNLAB_CACHE``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return (cache_dir or default_cache_dir()) / f"{prefix}-{digest[:32]}"


def load_split(folder: Path, what: str) -> Split | None:
    """The cached split, or None when there is none or it cannot be read."""
    if not (folder / "meta.json").exists():
        return None
    try:
        return Split(np.load(folder / "images.npy"), np.load(folder / "labels.npy"))
    except (OSError, ValueError) as exc:
        _log.warning("%s: ignoring unreadable cache %s (%s); making it again", what, folder, exc)
        return None


def save_split(folder: Path, split: Split, what: str) -> None:
    """Write the arrays, then meta.json; a read-only cache only costs the next load time."""
    try:
        (folder / "meta.json").unlink(missing_ok=True)
        atomic_write(folder / "images.npy", lambda f: np.save(f, split.images))
        atomic_write(folder / "labels.npy", lambda f: np.save(f, split.labels))
        atomic_write_text(folder / "meta.json", json.dumps({"what": what, "n": len(split)}))
    except OSError as exc:
        warnings.warn(
            f"{what}: could not write the cache in {folder} ({exc}); the next load will make "
            f"it again (set CNNLAB_CACHE to a writable folder)",
            stacklevel=3,
        )
