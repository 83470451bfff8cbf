import gzip
import os

import numpy as np
import pytest
from conftest import write_learnable_mnist
from fakedata import make_tar, write_cifar10_batches, write_image_folder, write_svhn_mat

from cnnlab.data import sources
from cnnlab.data.datasets import load_dataset, locate
from cnnlab.errors import DataError


def test_our_layout_and_uncompressed_files(tmp_path):
    write_learnable_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    for f in (tmp_path / "mnist").iterdir():
        f.with_suffix("").write_bytes(gzip.decompress(f.read_bytes()))
        f.unlink()
    data = load_dataset("mnist", tmp_path)
    assert (len(data.train), len(data.test), data.classes[3]) == (30, 10, "3")


def test_torchvision_layouts_are_found(tmp_path):
    write_learnable_mnist(tmp_path / "FashionMNIST" / "raw", n_train=30, n_test=10)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.classes[9] == "Ankle boot"
    write_cifar10_batches(tmp_path / "cifar-10-batches-py", n_per_batch=4)
    cifar = load_dataset("cifar10", tmp_path)
    assert cifar.train.images.shape == (20, 3, 32, 32)


def test_svhn_from_mat_files(tmp_path):
    write_svhn_mat(tmp_path / "svhn" / "train_32x32.mat", n=12)
    write_svhn_mat(tmp_path / "svhn" / "test_32x32.mat", n=6, seed=1)
    data = load_dataset("svhn", tmp_path)
    assert data.train.images.shape == (12, 3, 32, 32)
    assert data.train.labels.max() <= 9


def test_cifar10_name_accepts_a_jpeg_archive_in_its_folder(tmp_path):
    write_image_folder(
        tmp_path / "src", classes=("airplane", "automobile"), n_per_class=2, size=(32, 32)
    )
    (tmp_path / "cifar10").mkdir()
    make_tar(tmp_path / "src", tmp_path / "cifar10" / "cifar10-jpeg.tar.gz")
    data = load_dataset("cifar10", tmp_path)
    assert data.classes == ["airplane", "automobile"]
    assert data.name == "cifar10"


def test_missing_dataset_names_files_and_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setitem(
        sources.SOURCES, "mnist", sources.SOURCES["mnist"].__class__(
            **{**sources.SOURCES["mnist"].__dict__, "system_dirs": (str(tmp_path / "system"),)}
        )
    )  # fmt: skip
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path / "data")
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    for place in (
        tmp_path / "data" / "mnist",
        tmp_path / "data" / "MNIST/raw",
        tmp_path / "system",
    ):
        assert str(place) in message
    assert "--data-dir" in message and "\n" not in message


def test_download_failure_is_clear_and_fast(tmp_path, monkeypatch):
    def no_network(data_dir):
        raise OSError("Network is unreachable")

    monkeypatch.setitem(
        sources.SOURCES, "svhn", sources.SOURCES["svhn"].__class__(
            **{**sources.SOURCES["svhn"].__dict__, "download": no_network}
        )
    )  # fmt: skip
    with pytest.raises(DataError, match=r"download into .* failed .*Network is unreachable"):
        load_dataset("svhn", tmp_path, download=True)


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    assert sources.default_data_dir() == tmp_path
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert sources.default_data_dir() == tmp_path / "cache" / "cnnlab" / "data"


def test_locate_reports_search_order(tmp_path):
    found, searched = locate("cifar100", tmp_path)
    assert found is None
    assert searched[0] == tmp_path / "cifar100"


@pytest.mark.realdata
def test_real_mnist_through_the_registry(real_data):
    data = load_dataset("mnist", real_data)
    assert data.train.images.shape == (60000, 1, 28, 28)
    np.testing.assert_array_equal(data.train.labels[:5], [5, 0, 4, 1, 9])
    np.testing.assert_array_equal(
        np.bincount(data.test.labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )


def test_real_fashion_mnist_from_the_debian_package():
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    data = load_dataset("fashion-mnist", sources.default_data_dir())
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert np.bincount(data.train.labels).tolist() == [6000] * 10


def test_the_settings_know_every_dataset_the_registry_reads():
    from cnnlab.config.dataset import BUILTIN_FILES, DATASET_NAMES
    from cnnlab.data import datasets, sources

    assert tuple(sources.SOURCES) == BUILTIN_FILES
    assert tuple(datasets.ENTRIES) == DATASET_NAMES


def test_dataset_references_are_parsed_once_with_their_options(tmp_path):
    from cnnlab.config.dataset import parse_dataset
    from cnnlab.config.schema import make_config
    from cnnlab.errors import ConfigError

    ref = make_config({"dataset": "digits-wild:size=28,svhn=0"}).dataset_ref
    assert (ref.kind, ref.options.size, ref.options.svhn, str(ref)) == (
        "digits-wild", 28, 0.0, "digits-wild:size=28,svhn=0",
    )  # fmt: skip
    folder = parse_dataset("folder:photos").relative_to(tmp_path)
    assert (folder.kind, folder.path) == ("folder", (tmp_path / "photos").resolve())
    assert parse_dataset("mnist").relative_to(tmp_path).text == "mnist"
    with pytest.raises(ConfigError, match=r"unknown dataset 'mnsit' \(did you mean 'mnist'\?\)"):
        make_config({"dataset": "mnsit"})
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        parse_dataset("digits-wild:sise=28")


def test_splits_that_do_not_fit_together_are_refused_when_loaded(tmp_path):
    from fakedata import write_idx

    folder = tmp_path / "mnist"
    write_idx(folder, "train", n=30)
    write_idx(folder, "t10k", n=10, h=14, w=14)
    with pytest.raises(DataError, match=r"test images are 1x14x14 but train images 1x28x28"):
        load_dataset("mnist", tmp_path)
    write_idx(folder, "t10k", n=0)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz holds no images"):
        load_dataset("mnist", tmp_path)


def test_an_image_folder_with_one_image_per_class_has_no_test_split(tmp_path):
    write_image_folder(tmp_path / "photos", n_per_class=1, splits=())
    with pytest.raises(DataError, match=r"the test split holds no images"):
        load_dataset(f"folder:{tmp_path / 'photos'}")


def test_a_folder_where_an_idx_file_should_be_is_named(tmp_path):
    from fakedata import write_mnist_like

    write_mnist_like(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").mkdir()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is a folder where an IDX"):
        load_dataset("mnist", tmp_path)
