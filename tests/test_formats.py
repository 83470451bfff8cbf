"""Readers for IDX, CIFAR pickles and SVHN .mat: round trips and every kind of bad file."""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
from pathlib import Path

import fakedata
import numpy as np
import pytest
from fakedata import (
    idx_bytes,
    write_cifar10_batches,
    write_cifar100,
    write_idx,
    write_mnist_like,
    write_svhn_mat,
)

from cnnlab.data.formats import (
    SVHN_CLASSES,
    read_cifar10,
    read_cifar100,
    read_idx_images,
    read_idx_labels,
    read_idx_split,
    read_svhn_split,
)
from cnnlab.errors import ConfigError, DataError


def raises_one_line(*fragments: str) -> contextlib.AbstractContextManager[None]:
    return fakedata.raises_one_line(DataError, *fragments)


# --- IDX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = write_idx(tmp_path, n=7, h=5, w=3, gz=gz)
    suffix = ".gz" if gz else ""
    split = read_idx_split(
        tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path / f"train-labels-idx1-ubyte{suffix}"
    )
    assert split.images.dtype == np.uint8 and split.images.shape == (7, 1, 5, 3)
    assert split.labels.dtype == np.int64
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    assert split.images.flags.writeable


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    images, _ = write_idx(tmp_path, n=4, gz=True)
    gz_named_raw = tmp_path / "raw.gz"
    raw_named_plain = tmp_path / "plain"
    gz_named_raw.write_bytes(
        gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    )
    raw_named_plain.write_bytes((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(read_idx_images(gz_named_raw), images)
    np.testing.assert_array_equal(read_idx_images(raw_named_plain), images)


def test_mnist_like_has_every_class(tmp_path: Path) -> None:
    written = write_mnist_like(tmp_path, n_train=30, n_test=10)
    split = read_idx_split(
        tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
    )
    np.testing.assert_array_equal(split.images, written.test.images)
    assert set(written.train.labels.tolist()) == set(range(10))
    assert sorted(split.labels.tolist()) == list(range(10))


def test_truncated_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path, n=50)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with raises_one_line(str(path), "truncated or corrupt gzip", "re-download"):
        read_idx_images(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path, n=50)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[20:60] = bytes(40)
    path.write_bytes(bytes(data))
    with raises_one_line(str(path), "corrupt gzip"):
        read_idx_images(path)


def test_wrong_magic_names_expected_and_found(tmp_path: Path) -> None:
    write_idx(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    with raises_one_line(str(labels), "magic number 2049", "a labels file", "expected 2051"):
        read_idx_images(labels)
    with raises_one_line("magic number 2051", "an images file", "expected 2049"):
        read_idx_labels(tmp_path / "train-images-idx3-ubyte")


def test_wrong_dimension_count(tmp_path: Path) -> None:
    path = tmp_path / "four-d"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 4, 5), np.uint8)))
    with raises_one_line("4 dimensions", "expected 2051"):
        read_idx_images(path)


def test_not_an_idx_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world, not idx")
    with raises_one_line("not an IDX file"):
        read_idx_images(path)
    path.write_bytes(b"\x00\x00")
    with raises_one_line("only 2 bytes"):
        read_idx_labels(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 4), np.uint8))[:10])
    with raises_one_line("header needs 16 bytes", "holds 10"):
        read_idx_images(path)


def test_truncated_data(tmp_path: Path) -> None:
    write_idx(tmp_path, n=20, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:1016]))
    with raises_one_line(
        "mnist: ",
        str(path),
        "is truncated: header says 20x28x28 images (15680 bytes)",
        "holds 1000 bytes",
    ):
        read_idx_images(path, name="mnist")


def test_over_long_data(tmp_path: Path) -> None:
    write_idx(tmp_path, n=5, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with raises_one_line("is too long", "header says 5 labels (5 bytes)", "holds 7 bytes"):
        read_idx_labels(path)


def test_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path, prefix="train", n=6, gz=False)
    write_idx(tmp_path, prefix="t10k", n=4, gz=False)
    images, labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "t10k-labels-idx1-ubyte"
    with raises_one_line(str(images), "6 images", str(labels), "4 labels"):
        read_idx_split(images, labels)


def test_label_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([0, 1, 2, 7, 3], np.uint8)))
    assert read_idx_labels(path, num_classes=8).tolist() == [0, 1, 2, 7, 3]
    with raises_one_line("label 7 at index 3", "outside 0..4"):
        read_idx_labels(path, num_classes=5)


def test_missing_idx_file(tmp_path: Path) -> None:
    with raises_one_line("mnist: ", "nope.gz does not exist"):
        read_idx_images(tmp_path / "nope.gz", name="mnist")


# --- CIFAR ---------------------------------------------------------------------------------


def test_cifar10_round_trip(tmp_path: Path) -> None:
    written = write_cifar10_batches(tmp_path / "cifar-10-batches-py", n_per_batch=4)
    for directory in (tmp_path / "cifar-10-batches-py", tmp_path):
        data = read_cifar10(directory)
        assert data.classes == written.classes
        assert data.train.images.shape == (20, 3, 32, 32) and data.test.images.shape == (
            4,
            3,
            32,
            32,
        )
        np.testing.assert_array_equal(data.train.images, written.train.images)
        np.testing.assert_array_equal(data.train.labels, written.train.labels)
        np.testing.assert_array_equal(data.test.images, written.test.images)
        np.testing.assert_array_equal(data.test.labels, written.test.labels)


def test_cifar_planes_become_channels(tmp_path: Path) -> None:
    """Row 0 of the batch is 1024 red, 1024 green, 1024 blue values, row-major."""
    write_cifar10_batches(tmp_path, n_per_batch=1)
    batch = pickle.loads((tmp_path / "data_batch_1").read_bytes(), encoding="bytes")
    data = read_cifar10(tmp_path)
    np.testing.assert_array_equal(data.train.images[0, 1, 0, :], batch[b"data"][0, 1024:1056])
    np.testing.assert_array_equal(data.train.images[0, 2, 1, 0], batch[b"data"][0, 2048 + 32])


def test_cifar_accepts_str_keys(tmp_path: Path) -> None:
    written = write_cifar10_batches(tmp_path, n_per_batch=2)
    for path in tmp_path.iterdir():
        batch = pickle.loads(path.read_bytes(), encoding="bytes")
        path.write_bytes(pickle.dumps({k.decode(): v for k, v in batch.items()}, protocol=4))
    data = read_cifar10(tmp_path)
    np.testing.assert_array_equal(data.test.images, written.test.images)
    assert data.classes[0] == "airplane"


@pytest.mark.parametrize("label", ["fine", "coarse"])
def test_cifar100_round_trip(tmp_path: Path, label: str) -> None:
    written = write_cifar100(tmp_path / "cifar-100-python", n_train=6, n_test=3)[label]
    data = read_cifar100(tmp_path, label=label)
    assert data.classes == written.classes and data.num_classes == (100 if label == "fine" else 20)
    np.testing.assert_array_equal(data.train.images, written.train.images)
    np.testing.assert_array_equal(data.train.labels, written.train.labels)
    np.testing.assert_array_equal(data.test.labels, written.test.labels)


def test_cifar100_bad_label_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'fine' or 'coarse'"):
        read_cifar100(tmp_path, label="medium")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_evil_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_cifar10_batches(tmp_path, n_per_batch=2)
    batch = pickle.loads((tmp_path / "data_batch_3").read_bytes(), encoding="bytes")
    batch[b"labels"] = _Evil()
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=4))
    with raises_one_line(str(tmp_path / "data_batch_3"), "refusing to unpickle", "system"):
        read_cifar10(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_pickle(tmp_path: Path) -> None:
    write_cifar10_batches(tmp_path, n_per_batch=3)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with raises_one_line(str(path), "not a readable pickle"):
        read_cifar10(tmp_path)


def test_cifar_wrong_data_shape(tmp_path: Path) -> None:
    write_cifar10_batches(tmp_path, n_per_batch=2)
    path = tmp_path / "data_batch_2"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[b"data"] = batch[b"data"][:, :100]
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with raises_one_line(str(path), "(2, 100)", "expected uint8 (N, 3072)"):
        read_cifar10(tmp_path)


def test_cifar_label_out_of_range(tmp_path: Path) -> None:
    write_cifar10_batches(tmp_path, n_per_batch=2)
    path = tmp_path / "test_batch"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[b"labels"] = [3, 10]
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with raises_one_line(str(path), "label 10 at index 1"):
        read_cifar10(tmp_path)


def test_cifar_missing_files(tmp_path: Path) -> None:
    with raises_one_line("cifar10: ", "holds no data_batch_1", "cifar-10-batches-py"):
        read_cifar10(tmp_path)
    with raises_one_line("does not exist"):
        read_cifar100(tmp_path / "absent")
    write_cifar10_batches(tmp_path, n_per_batch=1)
    (tmp_path / "data_batch_4").unlink()
    with raises_one_line("data_batch_4 does not exist"):
        read_cifar10(tmp_path)


# --- SVHN ----------------------------------------------------------------------------------


def test_svhn_round_trip_maps_10_to_0(tmp_path: Path) -> None:
    images, labels = write_svhn_mat(tmp_path / "train_32x32.mat", n=12)
    split = read_svhn_split(tmp_path / "train_32x32.mat")
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    assert split.labels[0] == 0 and split.labels.max() == 9
    assert [str(d) for d in range(10)] == SVHN_CLASSES


def test_svhn_bad_files(tmp_path: Path) -> None:
    import scipy.io

    with raises_one_line("svhn: ", "does not exist"):
        read_svhn_split(tmp_path / "train_32x32.mat")
    path = tmp_path / "bad.mat"
    scipy.io.savemat(
        path, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[1], [11], [2], [3]])}
    )
    with raises_one_line("label 11 at index 1"):
        read_svhn_split(path)
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 4), np.uint8), "y": np.ones((4, 1))})
    with raises_one_line("expected uint8 (32, 32, 3, N)"):
        read_svhn_split(path)
    write_svhn_mat(path, n=4)
    path.write_bytes(path.read_bytes()[:300])
    with raises_one_line(str(path), "not a readable .mat file"):
        read_svhn_split(path)


# --- the real MNIST, when present ------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.realdata
def test_real_mnist() -> None:
    folder = Path(os.environ.get("CNNLAB_DATA", "/nonexistent")) / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("set CNNLAB_DATA to a folder with mnist/*-idx?-ubyte.gz to run this")
    train = read_idx_split(
        folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    )
    test = read_idx_split(
        folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    )
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test.labels).tolist() == MNIST_TEST_COUNTS


def test_cifar_labels_pickled_as_numpy_integers_are_read(tmp_path):
    write_cifar10_batches(tmp_path, n_per_batch=10)
    path = tmp_path / "data_batch_2"
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch[b"labels"] = [np.int64(v) for v in batch[b"labels"]]
    path.write_bytes(pickle.dumps(batch, protocol=3))
    assert len(read_cifar10(tmp_path).train) == 50


@pytest.mark.parametrize(
    ("names", "message"),
    [(b"airplane", "label_names is not a list of class names"), ([b"cat"], "lists 1 class name")],
)
def test_cifar_class_lists_that_cannot_be_right_are_blamed_on_batches_meta(
    tmp_path, names, message
):
    write_cifar10_batches(tmp_path, n_per_batch=10)
    meta = tmp_path / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": names}, protocol=3))
    with raises_one_line(str(meta), message):
        read_cifar10(tmp_path)
