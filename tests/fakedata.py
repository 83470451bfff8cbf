"""Write tiny, deterministic dataset files in the canonical formats, for tests.

Each writer produces files the way the real distributions lay them out, and
returns the arrays it wrote so a test can compare what a reader gives back.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data.arrays import DatasetArrays, Split

PathLike = str | os.PathLike[str]

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


@contextlib.contextmanager
def raises_one_line(error_type: type[Exception], *fragments: str) -> Iterator[None]:
    """Expect ``error_type`` with a single-line message holding every fragment.

    The CLI prints a CnnlabError as one line, so a message is only useful when it
    names the file, the problem and the fix on that line.
    """
    try:
        yield
    except error_type as exc:
        message = str(exc)
        assert "\n" not in message, f"message spans lines: {message!r}"
        missing = [f for f in fragments if f not in message]
        assert not missing, f"{missing} not in {message!r}"
    else:
        raise AssertionError(f"{error_type.__name__} not raised")


# --- IDX -----------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file: magic 0x0800 | ndim, big-endian dims, data."""
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(
    directory: PathLike,
    prefix: str = "train",
    n: int = 20,
    h: int = 28,
    w: int = 28,
    num_classes: int = 10,
    gz: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Write ``{prefix}-images-idx3-ubyte[.gz]`` and ``{prefix}-labels-idx1-ubyte[.gz]``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, h, w), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    _write_idx_pair(Path(directory), prefix, images, labels, gz)
    return images, labels


def write_mnist_like(
    directory: PathLike, n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0
) -> DatasetArrays:
    """Write MNIST-named train and t10k IDX files in which every digit occurs."""
    rng = np.random.default_rng(seed)
    splits = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
        labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
        _write_idx_pair(Path(directory), prefix, images, labels, gz)
        splits[prefix] = Split(images, labels)
    return DatasetArrays(
        name="mnist",
        train=splits["train"],
        test=splits["t10k"],
        classes=[str(d) for d in range(10)],
        source=str(directory),
    )


def _write_idx_pair(
    directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for kind, array in (("images-idx3", images[:, 0]), ("labels-idx1", labels.astype(np.uint8))):
        data = idx_bytes(array)
        if gz:
            data = gzip.compress(data, mtime=0)
        (directory / f"{prefix}-{kind}-ubyte{suffix}").write_bytes(data)


# --- CIFAR python pickles ------------------------------------------------------------------


def write_cifar10_batches(
    directory: PathLike, n_per_batch: int = 10, seed: int = 0
) -> DatasetArrays:
    """Write data_batch_1..5, test_batch and batches.meta like ``cifar-10-batches-py``."""
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    splits = []
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        split = _random_cifar_split(rng, n_per_batch, 10)
        _dump_like_original(
            directory / batch,
            {
                b"batch_label": batch.encode(),
                b"labels": split.labels.tolist(),
                b"data": split.images.reshape(n_per_batch, 3072),
                b"filenames": [f"img_{i}.png".encode() for i in range(n_per_batch)],
            },
        )
        splits.append(split)
    _dump_like_original(
        directory / "batches.meta",
        {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_cases_per_batch": n_per_batch,
        },
    )
    train = splits[:5]
    return DatasetArrays(
        name="cifar10",
        train=Split(
            np.concatenate([s.images for s in train]), np.concatenate([s.labels for s in train])
        ),
        test=splits[5],
        classes=list(CIFAR10_CLASSES),
        source=str(directory),
    )


def write_cifar100(
    directory: PathLike, n_train: int = 20, n_test: int = 10, seed: int = 0
) -> dict[str, DatasetArrays]:
    """Write train, test and meta like ``cifar-100-python``.

    Returns what a reader should give for each label set: {"fine": ..., "coarse": ...}.
    """
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    fine_names = [f"fine{i:02d}" for i in range(100)]
    coarse_names = [f"coarse{i:02d}" for i in range(20)]
    written: dict[str, dict[str, Split]] = {"fine": {}, "coarse": {}}
    for split_name, n in (("train", n_train), ("test", n_test)):
        fine = _random_cifar_split(rng, n, 100)
        coarse = fine.labels // 5
        _dump_like_original(
            directory / split_name,
            {
                b"data": fine.images.reshape(n, 3072),
                b"fine_labels": fine.labels.tolist(),
                b"coarse_labels": coarse.tolist(),
            },
        )
        written["fine"][split_name] = fine
        written["coarse"][split_name] = Split(fine.images, coarse)
    _dump_like_original(
        directory / "meta",
        {
            b"fine_label_names": [c.encode() for c in fine_names],
            b"coarse_label_names": [c.encode() for c in coarse_names],
        },
    )
    return {
        label: DatasetArrays(
            name="cifar100",
            train=splits["train"],
            test=splits["test"],
            classes=fine_names if label == "fine" else coarse_names,
            source=str(directory),
        )
        for label, splits in written.items()
    }


def _random_cifar_split(rng: np.random.Generator, n: int, num_classes: int) -> Split:
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    return Split(images, labels)


def _dump_like_original(path: Path, obj: dict[bytes, object]) -> None:
    """Pickle with the numpy 1 module name the original (Python 2) batches reference.

    Protocol 3 keeps bytes as bytes (protocol 2 under Python 3 would route them
    through codecs.encode) and writes globals as text lines, so the numpy 2 module
    name can be swapped for the one in the real files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(obj, protocol=3)
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)


# --- SVHN .mat -----------------------------------------------------------------------------


def write_svhn_mat(path: PathLike, n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write an SVHN-style .mat (X (32,32,3,n), y (n,1) with 10 for digit 0).

    Returns images (n, 3, 32, 32) and labels 0..9, i.e. what a reader should give.
    """
    import scipy.io

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % 10
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": y})
    return images, labels


# --- image folders and tars ----------------------------------------------------------------


def write_image_folder(
    root: PathLike,
    classes: Sequence[str] = ("cat", "dog"),
    n_per_class: int = 4,
    size: tuple[int, int] = (16, 16),
    mode: str = "RGB",
    ext: str = "png",
    splits: Sequence[str] = ("train", "test"),
    seed: int = 0,
) -> list[Path]:
    """Write ``root/<split>/<class>/NNN.<ext>`` (or ``root/<class>/…`` when splits is empty).

    ``size`` is (H, W). Modes L, LA, RGB and RGBA get random values in every band
    (so alpha really varies); other modes (P, 1, CMYK…) are converted from RGB.
    Returns the written paths in the order a reader should list them.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    written = []
    for split in splits or ("",):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                path = folder / f"{i:03d}.{ext}"
                _random_image(rng, size, mode).save(path)
                written.append(path)
    return written


def _random_image(rng: np.random.Generator, size: tuple[int, int], mode: str) -> Image.Image:
    h, w = size
    if mode in ("L", "LA", "RGB", "RGBA"):
        pixels = rng.integers(0, 256, size=(h, w, len(mode)), dtype=np.uint8)
        return Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).convert(mode)


def make_tar(
    src_dir: PathLike, tar_path: PathLike, gz: bool = True, wrap: str | None = None
) -> Path:
    """Pack the contents of ``src_dir`` (sorted, so the bytes are reproducible) into a tar.

    ``wrap`` puts everything under one top-level folder of that name, like most
    downloaded archives.
    """
    src_dir, tar_path = Path(src_dir), Path(tar_path)
    with tarfile.open(tar_path, "w:gz" if gz else "w") as tar:
        for path in sorted(src_dir.rglob("*")):
            arcname = path.relative_to(src_dir).as_posix()
            tar.add(path, arcname=f"{wrap}/{arcname}" if wrap else arcname, recursive=False)
    return tar_path
