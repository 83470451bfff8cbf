"""digits-wild: printed digits, the composite's parts and domains, weights, caching, SVHN."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakedata import raises_one_line, write_mnist_like, write_svhn_mat

from cnnlab.data import digits_wild, printed
from cnnlab.data.datasets import dataset_names, load_dataset, locate
from cnnlab.data.loader import pad_to
from cnnlab.errors import ConfigError, DataError

N_PRINTED_TRAIN, N_PRINTED_TEST = 40, 20


@pytest.fixture(autouse=True)
def _small_and_fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Few printed digits, a cache per test, and the 'no SVHN' notice not yet given."""
    monkeypatch.setattr(digits_wild, "PRINTED_TRAIN", N_PRINTED_TRAIN)
    monkeypatch.setattr(digits_wild, "PRINTED_TEST", N_PRINTED_TEST)
    monkeypatch.setattr(digits_wild, "_told_no_svhn", False)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A data dir with a 60/20 MNIST (every digit 6 / 2 times) and nothing else."""
    write_mnist_like(tmp_path / "data" / "mnist", n_train=60, n_test=20)
    return tmp_path / "data"


def counts(domains: np.ndarray, names: list[str]) -> dict[str, int]:
    return {name: int((domains == i).sum()) for i, name in enumerate(names) if (domains == i).any()}


def gray(images: np.ndarray) -> np.ndarray:
    """(N,) bool: every channel equal."""
    return (images == images[:, :1]).reshape(len(images), -1).all(1)


# --- printed digits ---------------------------------------------------------------------------


# --- the composite ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 28])
def test_shapes_domains_and_counts(mnist_dir: Path, size: int) -> None:
    name = f"digits-wild:size={size}"
    data = load_dataset(name, mnist_dir)
    assert data.name == name and data.classes == [str(d) for d in range(10)]
    assert data.domain_names == ["mnist", "mnist-recolored", "printed", "printed-unseen"]
    for split in (data.train, data.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, size, size)
        assert split.labels.dtype == np.int64 and split.domains is not None
    assert counts(data.train.domains, data.domain_names) == {"mnist": 60, "printed": 40}
    assert counts(data.test.domains, data.domain_names) == {
        "mnist": 20,
        "mnist-recolored": 20,
        "printed": 20,
        "printed-unseen": 20,
    }
    # Test domains come in order; mnist is the gray digits, padded; recoloured ones keep labels.
    np.testing.assert_array_equal(data.test.domains, np.repeat([0, 1, 2, 3], 20))
    mnist = load_dataset("mnist", mnist_dir)
    expected = np.repeat(pad_to(mnist.test.images, (size, size)), 3, axis=1)
    np.testing.assert_array_equal(data.test.images[:20], expected)
    np.testing.assert_array_equal(data.test.labels[20:40], mnist.test.labels)
    assert not gray(data.test.images[20:40]).any()
    assert "mnist: " in data.source and "svhn: not found" in data.source


def test_default_is_size_32_with_every_part_once(mnist_dir: Path) -> None:
    data = load_dataset("digits-wild", mnist_dir)
    assert data.name == "digits-wild" and data.shape == (3, 32, 32)
    assert len(data.train) == 60 + N_PRINTED_TRAIN


def test_weights_leave_out_halve_and_repeat_parts(mnist_dir: Path) -> None:
    data = load_dataset("digits-wild:mnist=0.5,printed=2", mnist_dir)
    names = data.domain_names
    assert counts(data.train.domains, names) == {"mnist": 30, "printed": 80}
    mnist_labels = data.train.labels[data.train.domains == 0]
    assert np.bincount(mnist_labels).tolist() == [3] * 10  # a class-balanced half
    printed_part = data.train.images[data.train.domains == 2]
    np.testing.assert_array_equal(printed_part[:40], printed_part[40:])
    again = load_dataset("digits-wild:mnist=0.5,printed=2", mnist_dir)
    np.testing.assert_array_equal(again.train.images, data.train.images)  # the same half
    only_printed = load_dataset("digits-wild:mnist=0", mnist_dir)
    assert counts(only_printed.train.domains, names) == {"printed": 40}
    assert len(only_printed.test) == len(data.test)  # weights shape the train split only
    only_mnist = load_dataset("digits-wild:printed=0,size=28", mnist_dir)
    assert counts(only_mnist.train.domains, names) == {"mnist": 60}


def test_recoloured_test_set_is_fixed_and_cached(
    mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = load_dataset("digits-wild", mnist_dir)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "other-cache"))
    fresh = load_dataset("digits-wild", mnist_dir)  # rendered and recoloured anew
    assert fresh.test.images.tobytes() == first.test.images.tobytes()
    assert fresh.train.images.tobytes() == first.train.images.tobytes()
    # The second load in the same cache renders and recolours nothing.
    monkeypatch.setattr(printed, "render_printed_digits", lambda *a: pytest.fail("rendered"))
    monkeypatch.setattr(digits_wild, "recolor_once", lambda *a: pytest.fail("recoloured"))
    cached = load_dataset("digits-wild", mnist_dir)
    assert cached.test.images.tobytes() == first.test.images.tobytes()
    assert cached.train.images.tobytes() == first.train.images.tobytes()


def test_recolor_once_is_deterministic_and_only_paints_gray() -> None:
    images = np.random.default_rng(0).integers(0, 256, (30, 1, 32, 32), dtype=np.uint8)
    a, b = digits_wild.recolor_once(images), digits_wild.recolor_once(images)
    assert a.shape == (30, 3, 32, 32) and a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(digits_wild.recolor_once(np.repeat(images, 3, 1)), a)


def test_svhn_joins_when_present(mnist_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    svhn_train, _ = write_svhn_mat(mnist_dir / "svhn" / "train_32x32.mat", n=12)
    svhn_test, svhn_test_labels = write_svhn_mat(mnist_dir / "svhn" / "test_32x32.mat", n=6, seed=1)
    with caplog.at_level(logging.WARNING):
        data = load_dataset("digits-wild", mnist_dir)
    assert not caplog.records
    names = data.domain_names
    assert names == ["mnist", "mnist-recolored", "printed", "printed-unseen", "svhn"]
    assert counts(data.train.domains, names) == {"mnist": 60, "printed": 40, "svhn": 12}
    assert counts(data.test.domains, names)["svhn"] == 6
    np.testing.assert_array_equal(data.train.images[data.train.domains == 4], svhn_train)
    np.testing.assert_array_equal(data.test.images[-6:], svhn_test)
    np.testing.assert_array_equal(data.test.labels[-6:], svhn_test_labels)
    assert f"svhn: {mnist_dir / 'svhn'}" in data.source

    small = load_dataset("digits-wild:size=28,svhn=0", mnist_dir)
    assert "svhn" not in counts(small.train.domains, names)
    resized = F.interpolate(
        torch.from_numpy(svhn_test).float(), size=(28, 28), mode="bilinear", antialias=True
    )
    np.testing.assert_array_equal(small.test.images[-6:], resized.round().to(torch.uint8).numpy())


def test_missing_svhn_is_said_once(mnist_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.digits_wild"):
        load_dataset("digits-wild", mnist_dir)
        load_dataset("digits-wild:size=28", mnist_dir)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "svhn not found" in messages[0] and "train_32x32.mat" in messages[0]


def test_asking_for_no_svhn_says_nothing(mnist_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.digits_wild"):
        load_dataset("digits-wild:svhn=0", mnist_dir)
    assert not caplog.records


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("digits-wild:size=30", ["size=30 is invalid", "size takes 32 or 28"]),
        ("digits-wild:colour=1", ["unknown option 'colour'", "valid options: size=32|28"]),
        ("digits-wild:mnist=-1", ["mnist=-1 is invalid", "a weight is a number >= 0"]),
        ("digits-wild:printed=lots", ["printed=lots is invalid"]),
        ("digits-wild:svhn=inf", ["svhn=inf is invalid"]),
        ("digits-wild:styles=fancy", ["styles=fancy is invalid", "styles takes full or basic"]),
        ("digits-wild:mnist", ["mnist needs a value", "valid options"]),
        ("digits-wild:mnist=1,mnist=2", ["mnist given twice"]),
        ("digits-wild:mnist=0,printed=0,svhn=0", ["every weight is 0"]),
        ("digits-wild:mnist=0,printed=0", ["leaves the train split empty (svhn not found)"]),
    ],
)
def test_bad_options_give_one_clear_line(mnist_dir: Path, name: str, fragments: list[str]) -> None:
    with raises_one_line(ConfigError, *fragments):
        load_dataset(name, mnist_dir)


def test_missing_mnist_names_its_files(tmp_path: Path) -> None:
    with raises_one_line(DataError, "digits-wild is built on MNIST", "train-images-idx3-ubyte"):
        load_dataset("digits-wild", tmp_path)


def test_the_registry_lists_and_locates_it(mnist_dir: Path, tmp_path: Path) -> None:
    assert "digits-wild" in dataset_names()
    found, _ = locate("digits-wild", mnist_dir)
    assert found is not None and found.location == mnist_dir / "mnist"
    assert found.read().domain_names == ["mnist", "mnist-recolored", "printed", "printed-unseen"]
    assert locate("digits-wild", tmp_path / "empty")[0] is None


@pytest.mark.realdata
@pytest.mark.slow
def test_real_mnist_in_digits_wild(real_data: Path) -> None:
    data = load_dataset("digits-wild:svhn=0", real_data)
    names = data.domain_names
    assert counts(data.train.domains, names) == {"mnist": 60_000, "printed": N_PRINTED_TRAIN}
    test = counts(data.test.domains, names)
    assert (test["mnist"], test["mnist-recolored"], test["printed"]) == (10_000, 10_000, 20)
    mnist_labels = data.test.labels[data.test.domains == 0]
    assert np.bincount(mnist_labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    np.testing.assert_array_equal(data.test.labels[data.test.domains == 1], mnist_labels)
