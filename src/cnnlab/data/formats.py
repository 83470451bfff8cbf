"""Readers for the binary files datasets are distributed in: IDX, CIFAR pickles, SVHN .mat.

Every reader checks what it reads against what the format promises, because a
truncated download that silently yields fewer images is far worse than an error:
each problem becomes one DataError line naming the file and the fix.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from cnnlab.data.arrays import DatasetArrays, Split
from cnnlab.errors import ConfigError, DataError

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2 has no numpy._core
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

PathLike = str | os.PathLike[str]

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
SVHN_CLASSES = [str(digit) for digit in range(10)]

_GZIP_MAGIC = b"\x1f\x8b"
_REDOWNLOAD = "re-download or re-copy it"


# --- IDX (MNIST and friends) -------------------------------------------------------------


def read_idx_images(path: PathLike, *, name: str = "idx") -> np.ndarray:
    """Read an IDX image file (magic 2051) into uint8 (N, 1, H, W).

    ``name`` is the dataset name that prefixes error messages, so a user with
    several datasets knows which one is broken.
    """
    data, dims = _read_idx(Path(path), IDX_IMAGES_MAGIC, "images", name)
    n, h, w = dims
    return data.reshape(n, 1, h, w)


def read_idx_labels(path: PathLike, num_classes: int = 10, *, name: str = "idx") -> np.ndarray:
    """Read an IDX label file (magic 2049) into int64 (N,), each in [0, num_classes)."""
    path = Path(path)
    data, _ = _read_idx(path, IDX_LABELS_MAGIC, "labels", name)
    _check_label_range(data, 0, num_classes, path, name)
    return data.astype(np.int64)


def read_idx_split(
    images_path: PathLike, labels_path: PathLike, num_classes: int = 10, *, name: str = "idx"
) -> Split:
    """Read a matching pair of IDX image and label files into one Split."""
    images = read_idx_images(images_path, name=name)
    labels = read_idx_labels(labels_path, num_classes, name=name)
    if len(images) != len(labels):
        raise DataError(
            f"{name}: {images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the two files must come from the same split, {_REDOWNLOAD}"
        )
    if len(images) == 0:
        raise DataError(f"{name}: {images_path} holds no images; {_REDOWNLOAD}")
    return Split(images, labels)


def _read_idx(path: Path, magic: int, kind: str, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return the flat uint8 payload and the header dimensions, after checking both agree."""
    raw = _read_maybe_gzip(path, name)
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or found != magic:
        raise DataError(
            f"{name}: {path} is not an IDX {kind} file: magic number {found} "
            f"(0x{found:08x}{_magic_hint(found, raw)}), expected {magic} (0x{magic:08x}); "
            f"check which file this is, or {_REDOWNLOAD}"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(
            f"{name}: {path} is truncated: its {ndim}-dimension header needs {header_size} bytes "
            f"but the file holds {len(raw)}; {_REDOWNLOAD}"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = _product(dims)
    held = len(raw) - header_size
    if held != expected:
        problem = "is truncated" if held < expected else "is too long"
        raise DataError(
            f"{name}: {path} {problem}: header says {'x'.join(map(str, dims))} {kind} "
            f"({expected} bytes) but the file holds {held} bytes of data; {_REDOWNLOAD}"
        )
    # Copy so callers get a writable array that owns its memory, not a view of the bytes.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).copy(), dims


def _magic_hint(found: int, raw: bytes) -> str:
    """Name the common mix-ups: images and labels swapped, another dimension count or type."""
    if len(raw) < 4:
        return f": the file holds only {len(raw)} bytes"
    if found == IDX_IMAGES_MAGIC:
        return ": an images file"
    if found == IDX_LABELS_MAGIC:
        return ": a labels file"
    if found >> 16 != 0:
        return ": not an IDX file"
    if found >> 8 != 0x08:
        return f": IDX data type 0x{found >> 8:02x}, only 0x08 uint8 is supported"
    return f": {found & 0xFF} dimensions"


def _product(dims: tuple[int, ...]) -> int:
    size = 1
    for d in dims:
        size *= d
    return size


def _read_maybe_gzip(path: Path, name: str) -> bytes:
    """Read a file, gunzipping it when it starts with the gzip magic, whatever its name."""
    raw = _read_bytes(path, name)
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(
            f"{name}: {path} is a truncated or corrupt gzip file ({exc}); {_REDOWNLOAD}"
        ) from exc


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(
            f"{name}: {path} does not exist; check the data folder or download the file"
        ) from exc
    except OSError as exc:
        raise DataError(
            f"{name}: cannot read {path} ({exc.strerror or exc}); check the path and permissions"
        ) from exc


def _check_label_range(labels: np.ndarray, low: int, high: int, path: Path, name: str) -> None:
    """Reject labels outside [low, high): a model would index past its output layer."""
    if labels.size == 0:
        return
    bad = (labels < low) | (labels >= high)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{name}: {path} has label {int(labels[first])} at index {first} "
            f"({int(bad.sum())} labels outside {low}..{high - 1}); {_REDOWNLOAD}"
        )


# --- CIFAR-10 / CIFAR-100 python pickles -------------------------------------------------


# What the CIFAR batches need to rebuild their numpy arrays, under both numpy 1 and 2 names.
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Labels pickled as numpy integers: scalar() builds one from its dtype and bytes.
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that can rebuild numpy arrays and nothing else.

    A pickle names any importable callable and the default Unpickler calls it, so a
    tampered "dataset" could run code; the CIFAR batches need only _PICKLE_ALLOWED.
    """

    def __init__(self, file: IO[bytes], path: Path, name: str) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._name}: {self._path} asks to load {module}.{name}, which a CIFAR batch "
                f"never needs; refusing to unpickle it (it may be malicious), re-download it "
                f"from the official source"
            ) from None


def read_cifar10(directory: PathLike) -> DatasetArrays:
    """Read CIFAR-10 as distributed: ``data_batch_1..5``, ``test_batch``, ``batches.meta``.

    ``directory`` may be the ``cifar-10-batches-py`` folder or the folder holding it.
    """
    folder = _batches_folder(Path(directory), "cifar-10-batches-py", "data_batch_1", "cifar10")
    classes = _label_names(folder / "batches.meta", b"label_names", "cifar10")
    train = [
        _read_cifar_batch(folder / f"data_batch_{i}", b"labels", len(classes), "cifar10")
        for i in range(1, 6)
    ]
    test = _read_cifar_batch(folder / "test_batch", b"labels", len(classes), "cifar10")
    return DatasetArrays(
        name="cifar10",
        train=Split(
            np.concatenate([s.images for s in train]), np.concatenate([s.labels for s in train])
        ),
        test=test,
        classes=classes,
        source=f"CIFAR-10 python batches in {folder}",
    )


def read_cifar100(directory: PathLike, label: str = "fine") -> DatasetArrays:
    """Read CIFAR-100 as distributed: ``train``, ``test``, ``meta``.

    ``label`` picks the 100 fine classes or the 20 coarse superclasses; both label
    sets live in the same files, so this is a choice of task, not of data.
    """
    if label not in ("fine", "coarse"):
        raise ConfigError(f"cifar100: label must be 'fine' or 'coarse', not {label!r}")
    folder = _batches_folder(Path(directory), "cifar-100-python", "train", "cifar100")
    classes = _label_names(folder / "meta", f"{label}_label_names".encode(), "cifar100")
    key = f"{label}_labels".encode()
    return DatasetArrays(
        name="cifar100" if label == "fine" else "cifar100-coarse",
        train=_read_cifar_batch(folder / "train", key, len(classes), "cifar100"),
        test=_read_cifar_batch(folder / "test", key, len(classes), "cifar100"),
        classes=classes,
        source=f"CIFAR-100 python files in {folder} ({label} labels)",
    )


def _batches_folder(directory: Path, subfolder: str, probe: str, name: str) -> Path:
    """Accept both the batches folder itself and the folder the archive was extracted into."""
    for candidate in (directory, directory / subfolder):
        if (candidate / probe).is_file():
            return candidate
    if not directory.exists():
        raise DataError(
            f"{name}: {directory} does not exist; point it at the extracted {subfolder} folder"
        )
    raise DataError(
        f"{name}: {directory} holds no {probe} file; point it at the extracted {subfolder} folder "
        f"(the python version of the dataset)"
    )


def _unpickle(path: Path, name: str) -> dict[bytes, Any]:
    """Load one pickle as a dict with bytes keys, whichever Python wrote it."""
    try:
        with path.open("rb") as f:
            obj = _NumpyOnlyUnpickler(f, path, name).load()
    except DataError:
        raise  # a refused global, already explained
    except FileNotFoundError as exc:
        raise DataError(f"{name}: {path} does not exist; {_REDOWNLOAD}") from exc
    except OSError as exc:
        raise DataError(
            f"{name}: cannot read {path} ({exc}); check the file and its permissions"
        ) from exc
    except Exception as exc:  # damaged bytes make the unpickler and numpy raise anything
        reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{name}: {path} is not a readable pickle ({reason}); {_REDOWNLOAD}"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{name}: {path} holds a {type(obj).__name__}, not a dict; {_REDOWNLOAD}")
    # Python 3 re-pickles of the batches have str keys; the originals (Python 2) bytes.
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _get(batch: dict[bytes, Any], key: bytes, path: Path, name: str) -> Any:
    try:
        return batch[key]
    except KeyError:
        raise DataError(f"{name}: {path} has no {key.decode()!r} entry; {_REDOWNLOAD}") from None


def _label_names(path: Path, key: bytes, name: str) -> list[str]:
    names = _get(_unpickle(path, name), key, path, name)
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(
            f"{name}: {path}: {key.decode()} is not a list of class names; {_REDOWNLOAD}"
        )
    if len(names) < 2:
        raise DataError(
            f"{name}: {path} lists {len(names)} class name; a classification dataset has at "
            f"least 2; {_REDOWNLOAD}"
        )
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int, name: str) -> Split:
    """Turn one batch's row-major (N, 3072) RGB planes into (N, 3, 32, 32)."""
    batch = _unpickle(path, name)
    data = _get(batch, b"data", path, name)
    try:
        labels = np.asarray(_get(batch, label_key, path, name))
    except (ValueError, TypeError, OverflowError):  # ragged or nested lists
        raise DataError(
            f"{name}: {path}: {label_key.decode()} is not a list of class numbers; {_REDOWNLOAD}"
        ) from None
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise DataError(
            f"{name}: {path} holds data {found}, expected uint8 (N, 3072); {_REDOWNLOAD}"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{name}: {path} holds {len(data)} images but labels of shape {labels.shape} "
            f"({labels.dtype}); {_REDOWNLOAD}"
        )
    _check_label_range(labels, 0, num_classes, path, name)
    return Split(np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels.astype(np.int64))


# --- SVHN cropped digits (.mat) ----------------------------------------------------------


def read_svhn_split(mat_path: PathLike) -> Split:
    """Read ``train_32x32.mat`` / ``test_32x32.mat``; SVHN stores digit 0 as label 10.

    Class names are ``SVHN_CLASSES`` ("0".."9"), so label i is digit i after the remap.
    """
    path = Path(mat_path)
    mat = _load_mat(path)
    x, y = mat.get("X"), mat.get("y")
    if (
        not isinstance(x, np.ndarray)
        or x.dtype != np.uint8
        or x.ndim != 4
        or x.shape[:3] != (32, 32, 3)
    ):
        found = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else "nothing"
        raise DataError(
            f"svhn: {path} holds X {found}, expected uint8 (32, 32, 3, N); {_REDOWNLOAD}"
        )
    if (
        not isinstance(y, np.ndarray)
        or y.size != x.shape[3]
        or not np.issubdtype(y.dtype, np.integer)
    ):
        found = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else "nothing"
        raise DataError(f"svhn: {path} holds {x.shape[3]} images but y is {found}; {_REDOWNLOAD}")
    labels = y.reshape(-1).astype(np.int64)
    _check_label_range(labels, 0, 11, path, "svhn")
    labels[labels == 10] = 0
    return Split(np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels)


def _load_mat(path: Path) -> dict[str, Any]:
    # scipy is imported here so that reading MNIST or CIFAR does not pay for it.
    import scipy.io

    if not path.exists():
        raise DataError(f"svhn: {path} does not exist; download train_32x32.mat / test_32x32.mat")
    try:
        return scipy.io.loadmat(path)
    except (
        ValueError,
        TypeError,
        OSError,
        NotImplementedError,
        zlib.error,
        scipy.io.matlab.MatReadError,
    ) as exc:
        raise DataError(f"svhn: {path} is not a readable .mat file ({exc}); {_REDOWNLOAD}") from exc
