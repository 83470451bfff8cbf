"""Image folders: the decoded cache, and the real CIFAR-10 JPEG tar when present."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fakedata import make_tar, write_image_folder
from PIL import Image
from test_folder import read

from cnnlab.data import folder
from cnnlab.data.folder import read_image_folder
from cnnlab.errors import DataError

# --- cache ---------------------------------------------------------------------------------


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls to the decoder; the list's length is the number of decodes."""
    calls: list[int] = []
    real = folder._decode_all

    def counting(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(folder, "_decode_all", counting)
    return calls


def test_second_load_comes_from_the_cache(tmp_path: Path, count_decodes: list[int]) -> None:
    write_image_folder(tmp_path / "r", n_per_class=2)
    first = read(tmp_path / "r", tmp_path, name="mine")
    second = read(tmp_path / "r", tmp_path, name="mine")
    assert len(count_decodes) == 1
    assert (second.name, second.classes, second.source) == (first.name, first.classes, first.source)
    np.testing.assert_array_equal(second.train.images, first.train.images)
    np.testing.assert_array_equal(second.test.labels, first.test.labels)
    read(tmp_path / "r", tmp_path, size=(8, 8))  # other options: another cache entry
    assert len(count_decodes) == 2


def test_changed_file_invalidates_the_cache(tmp_path: Path, count_decodes: list[int]) -> None:
    files = write_image_folder(tmp_path / "r", n_per_class=2)
    read(tmp_path / "r", tmp_path)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(files[0])
    os.utime(files[0], ns=(1, 1))
    data = read(tmp_path / "r", tmp_path)
    assert len(count_decodes) == 2
    assert data.train.images[0, :, 0, 0].tolist() == [1, 2, 3]


def test_cached_tar_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "src", n_per_class=2)
    tar = make_tar(tmp_path / "src", tmp_path / "d.tgz")
    first = read(tar, tmp_path)
    monkeypatch.setattr(folder, "list_tar", lambda *a: pytest.fail("tar read despite the cache"))
    np.testing.assert_array_equal(read(tar, tmp_path).train.images, first.train.images)
    os.utime(tar, ns=(1, 1))
    with pytest.raises(pytest.fail.Exception):
        read(tar, tmp_path)


def test_incomplete_cache_is_ignored(tmp_path: Path, count_decodes: list[int]) -> None:
    write_image_folder(tmp_path / "r", n_per_class=2)
    read(tmp_path / "r", tmp_path)
    (meta,) = (tmp_path / "cache").glob("*/meta.json")
    (meta.parent / "test_images.npy").write_bytes(b"torn")
    read(tmp_path / "r", tmp_path)
    meta.unlink()
    read(tmp_path / "r", tmp_path)
    assert len(count_decodes) == 3
    assert not list((tmp_path / "cache").glob("**/*.tmp"))


def test_unwritable_cache_warns_and_still_loads(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=1)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write the decoded-image cache"):
        data = read(tmp_path / "r", tmp_path)
    assert len(data.train) == 2


def test_default_cache_dir_is_cnnlab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "env-cache"))
    write_image_folder(tmp_path / "r", n_per_class=1)
    read_image_folder(tmp_path / "r")
    assert list((tmp_path / "env-cache").glob("*/meta.json"))


# --- the real CIFAR-10 JPEG tar, when present ------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cifar10_jpeg_tar() -> None:
    tar = Path(os.environ.get("CNNLAB_DATA", "/nonexistent")) / "cifar10" / "cifar10-jpeg.tar.gz"
    if not tar.is_file():
        pytest.skip("set CNNLAB_DATA to a folder with cifar10/cifar10-jpeg.tar.gz to run this")
    # $CNNLAB_CACHE, which .ci/run keeps between runs: 60,000 JPEGs decode in ~20 s once;
    # a warm cache is held to the same checks, and to a fresh decode of the first image.
    data = read_image_folder(tar)
    assert data.train.images.shape == (50000, 3, 32, 32)
    assert data.test.images.shape == (10000, 3, 32, 32)
    assert data.classes == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    assert np.bincount(data.train.labels).tolist() == [5000] * 10
    assert np.bincount(data.test.labels).tolist() == [1000] * 10
    means = data.train.images.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=5e-4)  # SOURCE.md
    with tarfile.open(tar, "r|gz") as archive:
        member = next(m for m in archive if m.isfile())
        assert member.name == "train/airplane/0000.jpg"
        data_file = archive.extractfile(member)
        assert data_file is not None
        first = np.asarray(Image.open(io.BytesIO(data_file.read())).convert("RGB"))
    np.testing.assert_array_equal(data.train.images[0], first.transpose(2, 0, 1))
    cached = read_image_folder(tar)
    np.testing.assert_array_equal(cached.train.images, data.train.images)


def test_the_size_is_the_folders_common_one_and_outliers_are_resized_with_a_warning(
    tmp_path, caplog
):
    root = tmp_path / "digits"
    write_image_folder(root, classes=("a", "b"), n_per_class=3, size=(28, 28), splits=())
    Image.new("RGB", (40, 30), "white").save(root / "a" / "odd.png")  # W x H
    with caplog.at_level("WARNING", logger="cnnlab.data.folder"):
        data = read(root, tmp_path)
    assert data.shape == (3, 28, 28)
    assert "1 image is not 28x28" in caplog.text and "odd.png (30x40)" in caplog.text


def test_an_image_above_the_decoded_size_limit_is_one_line_naming_it(tmp_path, monkeypatch):
    root = tmp_path / "digits"
    write_image_folder(root, classes=("a", "b"), n_per_class=3, size=(28, 28), splits=())
    Image.new("L", (10_000, 10_000)).save(root / "b" / "huge.png")  # about 100 KB on disk
    with pytest.raises(DataError, match=r"huge\.png is 10000x10000 pixels, more than the"):
        read(root, tmp_path)
    monkeypatch.setenv("CNNLAB_MAX_IMAGE_PIXELS", str(10**8))
    data = read(root, tmp_path)  # allowed now; the common size still rules
    assert data.shape == (3, 28, 28)
