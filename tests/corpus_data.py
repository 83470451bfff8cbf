"""Bad dataset files for the fault corpus: IDX, CIFAR batches, SVHN .mat, image folders, tars.

Each maker writes a dataset that is correct but for one fault into the case folder
(the current directory when it runs) and returns the command line that reads it.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
from corpus_case import Case
from fakedata import (
    _dump_like_original,
    idx_bytes,
    make_tar,
    write_cifar10_batches,
    write_image_folder,
    write_mnist_like,
    write_svhn_mat,
)
from PIL import Image

SHOW = ["data", "show", "--data-dir", "data", "--out", "out/grid.png"]


def mnist(fault) -> list[str]:
    folder = Path("data/mnist")
    write_mnist_like(folder, n_train=30, n_test=20)
    fault(folder)
    return [*SHOW, "mnist"]


def _rewrite(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0))


def _raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def idx_truncated_gzip(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])


def idx_bad_magic(folder: Path) -> None:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    _rewrite(path, b"\x00\x00\x09\x01" + _raw(path)[4:])


def idx_short_data(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    _rewrite(path, _raw(path)[:-100])


def idx_huge_count(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    raw = _raw(path)
    _rewrite(path, raw[:4] + (2**31 - 1).to_bytes(4, "big") + raw[8:])


def idx_label_count(folder: Path) -> None:
    labels = np.arange(19, dtype=np.uint8) % 10
    _rewrite(folder / "train-labels-idx1-ubyte.gz", idx_bytes(labels))


def idx_zero_images(folder: Path) -> None:
    _rewrite(folder / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(0, np.uint8)))


def idx_small_test_images(folder: Path) -> None:
    _rewrite(folder / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((20, 14, 14), np.uint8)))


def idx_label_out_of_range(folder: Path) -> None:
    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(20, 11, np.uint8)))


def idx_not_gzip(folder: Path) -> None:
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + os.urandom(64))


def idx_folder_instead(folder: Path) -> None:
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.unlink()
    path.mkdir()


def idx_file_missing(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()


def cifar(fault) -> list[str]:
    folder = Path("data/cifar10")
    write_cifar10_batches(folder, n_per_batch=10)
    fault(folder)
    return [*SHOW, "cifar10"]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def cifar_malicious(folder: Path) -> None:
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"labels": Evil()}, protocol=3))


def cifar_meta(names) -> object:
    def fault(folder: Path) -> None:
        _dump_like_original(folder / "batches.meta", {b"label_names": names})

    return fault


def cifar_truncated(folder: Path) -> None:
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])


def cifar_short_rows(folder: Path) -> None:
    batch = {b"labels": [1] * 10, b"data": np.zeros((10, 3000), np.uint8)}
    _dump_like_original(folder / "data_batch_4", batch)


def cifar_no_labels(folder: Path) -> None:
    _dump_like_original(folder / "data_batch_1", {b"data": np.zeros((10, 3072), np.uint8)})


def cifar_not_pickle(folder: Path) -> None:
    (folder / "data_batch_5").write_bytes(b"this is not a pickle\n" * 10)


def svhn(fault) -> list[str]:
    folder = Path("data/svhn")
    write_svhn_mat(folder / "train_32x32.mat", n=20)
    write_svhn_mat(folder / "test_32x32.mat", n=10, seed=1)
    fault(folder)
    return [*SHOW, "svhn"]


def svhn_truncated(folder: Path) -> None:
    path = folder / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[:300])


def svhn_write(x: np.ndarray, y: np.ndarray):
    def fault(folder: Path) -> None:
        import scipy.io

        scipy.io.savemat(folder / "test_32x32.mat", {"X": x, "y": y})

    return fault


def svhn_not_mat(folder: Path) -> None:
    (folder / "train_32x32.mat").write_bytes(os.urandom(512))


def folder(fault, name: str = "photos") -> list[str]:
    fault(Path(name))
    return [*SHOW, f"folder:{name}"]


def one_image_per_class(root: Path) -> None:
    write_image_folder(root, n_per_class=1, splits=())


def one_class(root: Path) -> None:
    write_image_folder(root, classes=("cat",), n_per_class=4)


def empty_folder(root: Path) -> None:
    (root / "train" / "cat").mkdir(parents=True)


def corrupt_image(root: Path) -> None:
    write_image_folder(root)
    (root / "train" / "dog" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))


def too_many_pixels(root: Path) -> None:
    write_image_folder(root)
    Image.new("L", (300, 300)).save(root / "test" / "cat" / "big.png")


def pillow_bomb(root: Path) -> None:
    write_image_folder(root)
    Image.new("L", (3000, 3000)).save(root / "train" / "cat" / "bomb.png")


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x"):
    """A tar member and its content stream (None for links, folders and devices)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    regular = kind == tarfile.REGTYPE
    info.size = len(data) if regular else 0
    return info, io.BytesIO(data) if regular else None


def tar_of(path: Path, members, images: bool = True) -> None:
    """A tar (gzipped when its name ends in gz) of a small image folder plus ``members``."""
    with tarfile.open(path, "w:gz" if str(path).endswith("gz") else "w") as tar:
        if images:
            write_image_folder(Path("src"))
            for file in sorted(Path("src").rglob("*")):
                tar.add(file, arcname=file.relative_to("src").as_posix(), recursive=False)
        for info, data in members:
            tar.addfile(info, data)


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x"):
    return lambda path: tar_of(path, [member(name, kind, link, data)])


def tar_only_escapes(path: Path) -> None:
    """Members named to land outside any folder are never extracted, and hold no class."""
    names = ("../../evil.png", "/etc/evil.png", "train/../../evil.png")
    tar_of(path, [member(name) for name in names], images=False)


def tar_truncated(path: Path) -> None:
    write_image_folder(Path("src"))
    make_tar(Path("src"), path)
    path.write_bytes(path.read_bytes()[:400])


RGB = np.zeros((32, 32, 3, 10), np.uint8)

CASES = [
    Case("idx-missing-file", lambda: mnist(idx_file_missing), 2, ("mnist", "not found")),
    Case("idx-truncated-gzip", lambda: mnist(idx_truncated_gzip), 2, ("train-images-idx3",)),
    Case("idx-bad-magic", lambda: mnist(idx_bad_magic), 2, ("t10k-labels-idx1", "magic")),
    Case("idx-short-data", lambda: mnist(idx_short_data), 2, ("train-images-idx3",)),
    Case("idx-huge-count", lambda: mnist(idx_huge_count), 2, ("train-images-idx3",)),
    Case("idx-label-count", lambda: mnist(idx_label_count), 2, ("train-labels-idx1", "19")),
    Case(
        "idx-zero-images",
        lambda: mnist(idx_zero_images),
        2,
        ("t10k-images-idx3-ubyte.gz", "holds no images"),
    ),
    Case("idx-14x14-test", lambda: mnist(idx_small_test_images), 2, ("14x14", "28x28")),
    Case("idx-label-11", lambda: mnist(idx_label_out_of_range), 2, ("t10k-labels-idx1", "11")),
    Case("idx-not-gzip", lambda: mnist(idx_not_gzip), 2, ("train-labels-idx1",)),
    Case("idx-folder", lambda: mnist(idx_folder_instead), 2, ("is a folder where an IDX file",)),
    Case("cifar-malicious", lambda: cifar(cifar_malicious), 2, ("data_batch_2", "system")),
    Case(
        "cifar-missing-batch",
        lambda: cifar(lambda f: (f / "data_batch_3").unlink()),
        2,
        ("cifar10",),
    ),
    Case("cifar-meta-dict", lambda: cifar(cifar_meta({b"a": 1})), 2, ("batches.meta",)),
    Case(
        "cifar-label-names-text",
        lambda: cifar(cifar_meta(b"airplane,automobile")),
        2,
        ("batches.meta", "not a list of class names"),
    ),
    Case("cifar-meta-1-class", lambda: cifar(cifar_meta([b"cat"])), 2, ("batches.meta",)),
    Case("cifar-truncated", lambda: cifar(cifar_truncated), 2, ("test_batch",)),
    Case("cifar-short-rows", lambda: cifar(cifar_short_rows), 2, ("data_batch_4", "3000")),
    Case("cifar-no-labels", lambda: cifar(cifar_no_labels), 2, ("data_batch_1", "labels")),
    Case("cifar-not-pickle", lambda: cifar(cifar_not_pickle), 2, ("data_batch_5", "pickle")),
    Case("svhn-truncated", lambda: svhn(svhn_truncated), 2, ("train_32x32.mat",)),
    Case("svhn-not-mat", lambda: svhn(svhn_not_mat), 2, ("train_32x32.mat",)),
    Case(
        "svhn-wrong-shape",
        lambda: svhn(svhn_write(np.zeros((28, 28, 10), np.uint8), np.ones((10, 1), np.uint8))),
        2,
        ("test_32x32.mat", "X"),
    ),
    Case(
        "svhn-label-12",
        lambda: svhn(svhn_write(RGB, np.full((10, 1), 12, np.uint8))),
        2,
        ("test_32x32.mat", "12"),
    ),
    Case(
        "svhn-count-mismatch",
        lambda: svhn(svhn_write(RGB, np.ones((7, 1), np.uint8))),
        2,
        ("test_32x32.mat", "10 images"),
    ),
    Case("folder-missing", lambda: folder(lambda root: None), 2, ("photos",)),
    Case("folder-empty", lambda: folder(empty_folder), 2, ("photos",)),
    Case(
        "folder-one-class",
        lambda: folder(one_class),
        2,
        ("photos", "1 class (cat)", "at least two"),
    ),
    Case("folder-1-per-class", lambda: folder(one_image_per_class), 2, ("photos", "test")),
    Case("folder-corrupt-png", lambda: folder(corrupt_image), 2, ("001.png",)),
    Case(
        "folder-too-many-pixels",
        lambda: folder(too_many_pixels),
        2,
        ("big.png", "CNNLAB_MAX_IMAGE_PIXELS"),
        env={"CNNLAB_MAX_IMAGE_PIXELS": "50000"},
    ),
    Case("folder-pillow-bomb", lambda: folder(pillow_bomb), 2, ("bomb.png",), bomb_limit=1_000_000),
    Case(
        "tar-symlink",
        lambda: folder(tar_member("train/cat/link.png", tarfile.SYMTYPE, "/etc/passwd"), "p.tar"),
        2,
        ("link.png", "/etc/passwd"),
    ),
    Case(
        "tar-escapes",
        lambda: folder(tar_only_escapes, "p.tar.gz"),
        2,
        ("p.tar.gz",),
    ),
    Case("tar-truncated", lambda: folder(tar_truncated, "p.tar.gz"), 2, ("p.tar.gz",)),
    Case(
        "tar-not-image",
        lambda: folder(tar_member("train/dog/bad.jpg", data=b"GIF89a nonsense"), "p.tar"),
        2,
        ("bad.jpg",),
    ),
    Case(
        "tar-fake-png",
        lambda: folder(tar_member("train/dog/fake.png", data=b"not a png" * 9), "p.tar"),
        2,
        ("fake.png", "not an image format Pillow reads"),  # no <_io.BytesIO object at 0x..>
    ),
]
