"""The built-in datasets read from canonical files: where their files may be, and readers.

Lookup order for a named dataset: the data directory (``--data-dir``, else
``$CNNLAB_DATA``, else a per-user cache folder) in our own layout
(``<data dir>/<name>/<canonical files>``) and in torchvision's layout (``MNIST/raw``,
``cifar-10-batches-py``, ...); then well-known system locations (Debian's
``dataset-fashion-mnist`` package); then, only when the caller allows it,
a torchvision download into the data directory. When nothing is found the
error names the files expected and every place searched.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data.arrays import DatasetArrays
from cnnlab.data.folder import ARCHIVE_SUFFIXES, read_image_folder
from cnnlab.data.formats import read_cifar10, read_cifar100, read_idx_split, read_svhn_split
from cnnlab.errors import DataError

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def default_data_dir() -> Path:
    """``$CNNLAB_DATA`` if set, else ``$XDG_CACHE_HOME/cnnlab/data`` (``~/.cache/...``)."""
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cnnlab" / "data"


@dataclass(frozen=True)
class Found:
    """Where a dataset was found and how to read it from there."""

    location: Path
    read: Callable[[], DatasetArrays]


@dataclass(frozen=True)
class DatasetSource:
    """A built-in dataset: its files, the folders they may be in, and its reader."""

    name: str
    description: str
    expected: str  # human-readable list of the canonical files
    subdirs: tuple[str, ...]  # candidate folders relative to a data dir
    system_dirs: tuple[str, ...]
    probe: Callable[[Path], Found | None]  # returns how to read it from a folder, if complete
    download: Callable[[Path], None] | None = None

    def candidates(self, data_dir: Path) -> list[Path]:
        return [data_dir / s for s in self.subdirs] + [Path(s) for s in self.system_dirs]


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
        if (folder / name).is_dir():
            raise DataError(
                f"{folder / name} is a folder where an IDX file should be; put the file "
                f"{stem}.gz (or {stem}) there instead"
            )
    return None


def _probe_idx(name: str, classes: list[str]) -> Callable[[Path], Found | None]:
    def probe(folder: Path) -> Found | None:
        paths = [_idx_file(folder, stem) for stem in IDX_FILES]
        if any(p is None for p in paths):
            return None
        tri, trl, tei, tel = (p for p in paths if p is not None)

        def read() -> DatasetArrays:
            return DatasetArrays(
                name=name,
                train=read_idx_split(tri, trl, num_classes=len(classes), name=name),
                test=read_idx_split(tei, tel, num_classes=len(classes), name=name),
                classes=list(classes),
                source=str(folder),
            )

        return Found(folder, read)

    return probe


def _probe_cifar10(folder: Path) -> Found | None:
    needed = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    if all((folder / n).is_file() for n in needed):
        return Found(folder, lambda: read_cifar10(folder))
    # Our shared data holds CIFAR-10 as a tar of JPEGs in the image-folder layout.
    archives = sorted(p for p in folder.glob("*") if p.name.endswith(ARCHIVE_SUFFIXES))
    if folder.is_dir() and len(archives) == 1:
        archive = archives[0]
        return Found(
            archive,
            lambda: read_image_folder(archive, name="cifar10"),
        )
    return None


def _probe_cifar100(folder: Path) -> Found | None:
    if all((folder / n).is_file() for n in ("train", "test", "meta")):
        return Found(folder, lambda: read_cifar100(folder))
    return None


def _probe_svhn(folder: Path) -> Found | None:
    train, test = folder / "train_32x32.mat", folder / "test_32x32.mat"
    if train.is_file() and test.is_file():

        def read() -> DatasetArrays:
            return DatasetArrays(
                name="svhn",
                train=read_svhn_split(train),
                test=read_svhn_split(test),
                classes=list(MNIST_CLASSES),
                source=str(folder),
            )

        return Found(folder, read)
    return None


def _torchvision_download(cls_name: str, subdir: str, **kwargs: object) -> Callable[[Path], None]:
    def download(data_dir: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        root = data_dir / subdir if subdir else data_dir
        if cls_name == "SVHN":
            for split in ("train", "test"):
                cls(root=str(root), split=split, download=True)
        else:
            cls(root=str(root), train=True, download=True, **kwargs)
            cls(root=str(root), train=False, download=True, **kwargs)

    return download


SOURCES: dict[str, DatasetSource] = {
    s.name: s
    for s in (
        DatasetSource(
            name="mnist",
            description="handwritten digits, 60k/10k, 1x28x28",
            expected="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (or uncompressed)",
            subdirs=("mnist", "MNIST/raw"),
            system_dirs=("/usr/share/datasets/mnist",),
            probe=_probe_idx("mnist", MNIST_CLASSES),
            download=_torchvision_download("MNIST", ""),
        ),
        DatasetSource(
            name="fashion-mnist",
            description="Zalando clothing images, 60k/10k, 1x28x28",
            expected="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (or uncompressed)",
            subdirs=("fashion-mnist", "FashionMNIST/raw"),
            system_dirs=("/usr/share/datasets/fashion-mnist",),
            probe=_probe_idx("fashion-mnist", FASHION_CLASSES),
            download=_torchvision_download("FashionMNIST", ""),
        ),
        DatasetSource(
            name="cifar10",
            description="tiny colour photos, 10 classes, 50k/10k, 3x32x32",
            expected="data_batch_1..5, test_batch, batches.meta (the python version), "
            "or one .tar/.tar.gz of train/<class>/*.jpg and test/<class>/*.jpg",
            subdirs=("cifar10", "cifar-10-batches-py"),
            system_dirs=(),
            probe=_probe_cifar10,
            download=_torchvision_download("CIFAR10", ""),
        ),
        DatasetSource(
            name="cifar100",
            description="tiny colour photos, 100 classes, 50k/10k, 3x32x32",
            expected="train, test, meta (the python version)",
            subdirs=("cifar100", "cifar-100-python"),
            system_dirs=(),
            probe=_probe_cifar100,
            download=_torchvision_download("CIFAR100", ""),
        ),
        DatasetSource(
            name="svhn",
            description="street-view house numbers, cropped digits, 73k/26k, 3x32x32",
            expected="train_32x32.mat, test_32x32.mat",
            subdirs=("svhn", "SVHN", ""),
            system_dirs=(),
            probe=_probe_svhn,
            download=_torchvision_download("SVHN", "svhn"),
        ),
    )
}


def locate(name: str, data_dir: Path | None = None) -> tuple[Found | None, list[Path]]:
    """Find a built-in dataset; return how to read it (or None) and every folder searched."""
    source = _source(name)
    searched = []
    for folder in source.candidates(data_dir or default_data_dir()):
        searched.append(folder)
        if folder.is_dir():
            found = source.probe(folder)
            if found is not None:
                return found, searched
    return None, searched


def load_builtin(name: str, data_dir: Path | None = None, download: bool = False) -> DatasetArrays:
    """Read a built-in dataset from its canonical files (downloading them only if asked)."""
    data_dir = data_dir or default_data_dir()
    found, searched = locate(name, data_dir)
    if found is None and download:
        _download(name, data_dir)
        found, searched = locate(name, data_dir)
    if found is None:
        source = SOURCES[name]
        places = ", ".join(str(p) for p in searched)
        # Only `cnnlab data show` downloads: the advice names it, not a flag that the
        # command at hand (train, run, evaluate) would reject.
        hint = (
            ""
            if download
            else f", or fetch them with `cnnlab data show {name} --download` on a machine "
            "with a network"
        )
        raise DataError(
            f"{name}: dataset not found. Expected {source.expected} in one of: {places}. "
            f"Put the files there, point --data-dir or CNNLAB_DATA at their parent folder{hint}."
        )
    return found.read()


def _source(name: str) -> DatasetSource:
    if name not in SOURCES:
        raise DataError(f"{name}: not a dataset read from canonical files ({', '.join(SOURCES)})")
    return SOURCES[name]


def _download(name: str, data_dir: Path) -> None:
    source = SOURCES[name]
    if source.download is None:
        raise DataError(f"{name}: no download available; put its files in {data_dir / name}")
    previous = socket.getdefaulttimeout()
    # A machine without a network must fail fast, not hang on a connect.
    socket.setdefaulttimeout(20)
    try:
        source.download(data_dir)
    except Exception as exc:  # torchvision raises many kinds (URLError, RuntimeError, ...)
        raise DataError(
            f"{name}: download into {data_dir} failed ({type(exc).__name__}: {exc}); "
            f"copy the files ({source.expected}) there by hand"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
