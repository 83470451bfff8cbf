"""Image folders and tars: layouts, image modes, ordering, bad input and the decode cache."""

from __future__ import annotations

import contextlib
import os
import tarfile
from pathlib import Path

import fakedata
import numpy as np
import pytest
from fakedata import make_tar, write_image_folder
from PIL import Image

from cnnlab.data import folder
from cnnlab.data.folder import read_image_folder
from cnnlab.errors import ConfigError, DataError


def raises_one_line(*fragments: str) -> contextlib.AbstractContextManager[None]:
    return fakedata.raises_one_line(DataError, *fragments)


def pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    """What a reader should give for one lossless file: (C, H, W)."""
    array = np.asarray(Image.open(path).convert(mode))
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read(path: Path, tmp_path: Path, **kwargs: object) -> folder.DatasetArrays:
    return read_image_folder(path, cache_dir=tmp_path / "cache", **kwargs)  # type: ignore[arg-type]


def with_test_split(root: Path, size: tuple[int, int] = (2, 2)) -> Path:
    """Give ``root/train/<classes>`` what a dataset needs besides the images a test looks
    at: a second class (``zz``, sorted last) and a test split of one image per class."""
    classes = [p.name for p in (root / "train").iterdir()] + ["zz"]
    for name in classes:
        for split in ("train", "test") if name == "zz" else ("test",):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            Image.new("L", size[::-1], 7).save(root / split / name / "extra.png")
    return root


# --- layouts and order ---------------------------------------------------------------------


def test_train_test_round_trip(tmp_path: Path) -> None:
    files = write_image_folder(
        tmp_path / "pets", classes=("dog", "cat"), n_per_class=3, size=(6, 5)
    )
    data = read(tmp_path / "pets", tmp_path)
    assert data.name == "pets" and data.classes == ["cat", "dog"]
    assert data.train.images.shape == (6, 3, 6, 5) and data.test.images.shape == (6, 3, 6, 5)
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    by_split = {s: sorted(p for p in files if p.parts[-3] == s) for s in ("train", "test")}
    for split_name, split in (("train", data.train), ("test", data.test)):
        expected = sorted(by_split[split_name], key=lambda p: (p.parent.name, p.name))
        np.testing.assert_array_equal(split.images, np.stack([pixels(p) for p in expected]))
    assert "train/ and test/ folders" in data.source


def test_natural_file_order(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    (root / "train" / "a").mkdir(parents=True)
    for value, file_name in enumerate(["img10.png", "img2.png", "img1.png", "img1b.png"]):
        Image.new("L", (2, 2), value * 10).save(root / "train" / "a" / file_name)
    (root / "train" / "b").mkdir()
    Image.new("L", (2, 2), 99).save(root / "train" / "b" / "x.png")
    data = read(with_test_split(root), tmp_path)
    assert data.train.images[:5, 0, 0, 0].tolist() == [20, 30, 10, 0, 99]  # 1, 1b, 2, 10, then b


def test_flat_layout_carves_a_stratified_seeded_test_split(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "flat", classes=("a", "b", "c"), n_per_class=10, splits=())
    data = read(tmp_path / "flat", tmp_path, test_fraction=0.3)
    assert np.bincount(data.test.labels).tolist() == [3, 3, 3]
    assert np.bincount(data.train.labels).tolist() == [7, 7, 7]
    assert (
        "no train/test folders" in data.source and "0.3" in data.source and "seed 0" in data.source
    )
    everything = np.concatenate([data.train.images, data.test.images])
    assert len(np.unique(everything.reshape(30, -1), axis=0)) == 30
    again = read_image_folder(
        tmp_path / "flat", cache_dir=tmp_path / "other-cache", test_fraction=0.3
    )
    np.testing.assert_array_equal(again.test.images, data.test.images)
    assert np.all(np.diff(data.test.labels) >= 0)  # class-major


def test_class_missing_from_one_split(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", classes=("a", "c"), n_per_class=2, splits=("train", "test"))
    write_image_folder(tmp_path / "r", classes=("b",), n_per_class=2, splits=("train",))
    data = read(tmp_path / "r", tmp_path)
    assert data.classes == ["a", "b", "c"]
    assert data.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.test.labels.tolist() == [0, 0, 2, 2]


def test_non_images_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=2)
    (tmp_path / "r" / "README.md").write_text("about")
    (tmp_path / "r" / "train" / "cat" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "r" / "train" / "cat" / "._000.png").write_bytes(b"AppleDouble junk")
    (tmp_path / "r" / "train" / "cat" / "labels.csv").write_text("x")
    (tmp_path / "r" / ".ipynb_checkpoints").mkdir()
    data = read(tmp_path / "r", tmp_path)
    assert len(data.train) == 4 and len(data.test) == 4


# --- image modes and sizes -----------------------------------------------------------------


def test_first_image_sets_channels_and_size(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "g", classes=("a",), size=(8, 6), mode="L", n_per_class=2)
    write_image_folder(tmp_path / "g", classes=("b",), size=(20, 10), mode="RGB", n_per_class=2)
    data = read(tmp_path / "g", tmp_path)
    assert data.shape == (1, 8, 6)
    np.testing.assert_array_equal(data.train.images[0], pixels(tmp_path / "g/train/a/000.png", "L"))
    expected = np.asarray(
        Image.open(tmp_path / "g/train/b/000.png")
        .convert("L")
        .resize((6, 8), Image.Resampling.BILINEAR)
    )
    np.testing.assert_array_equal(data.train.images[2, 0], expected)


def test_explicit_size_and_channels(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "g", mode="L", size=(9, 7), n_per_class=1)
    data = read(tmp_path / "g", tmp_path, size=(4, 5), channels=3)
    assert data.shape == (3, 4, 5)
    np.testing.assert_array_equal(data.train.images[:, 0], data.train.images[:, 2])  # grey in RGB
    assert read(tmp_path / "g", tmp_path, size=3).shape == (1, 3, 3)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1", "CMYK"])
def test_any_mode_decodes(tmp_path: Path, mode: str) -> None:
    ext = "jpg" if mode == "CMYK" else "png"
    write_image_folder(tmp_path / mode, mode=mode, ext=ext, n_per_class=2, size=(5, 4))
    data = read(tmp_path / mode, tmp_path)
    assert data.shape == ((1 if mode in ("L", "LA", "1") else 3), 5, 4)
    assert len(data.train) == 4


def test_transparency_becomes_white(tmp_path: Path) -> None:
    root = tmp_path / "alpha"
    (root / "train" / "a").mkdir(parents=True)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black: mid grey
    Image.fromarray(rgba).save(root / "train" / "a" / "0.png")
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 255, 0, 255, 0])
    palette.putpixel((0, 0), 0)
    palette.save(root / "train" / "a" / "1.png", transparency=1)  # green is transparent
    data = read(with_test_split(root), tmp_path, channels=3)
    first, second = data.train.images[0], data.train.images[1]
    assert first[:, 0, 0].tolist() == [255, 0, 0] and first[:, 0, 1].tolist() == [255, 255, 255]
    assert 120 <= first[0, 1, 0] <= 135
    assert second[:, 0, 0].tolist() == [0, 0, 255] and second[:, 1, 1].tolist() == [255, 255, 255]


def test_sixteen_bit_greyscale_is_scaled(tmp_path: Path) -> None:
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.array([[0, 4096], [32768, 65535]], np.uint16)).save(
        tmp_path / "d" / "train" / "a" / "0.png"
    )
    data = read(with_test_split(tmp_path / "d"), tmp_path)
    assert data.train.images[0, 0].tolist() == [[0, 16], [128, 255]]


# --- tars ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("gz", "wrap"), [(True, None), (False, "dataset-v1")])
def test_tar_equals_folder(tmp_path: Path, gz: bool, wrap: str | None) -> None:
    write_image_folder(tmp_path / "src", classes=("x", "y", "z"), n_per_class=3, ext="jpg")
    (tmp_path / "src" / "README.md").write_text("ignored")
    tar = make_tar(
        tmp_path / "src", tmp_path / ("pets.tar.gz" if gz else "pets.tar"), gz=gz, wrap=wrap
    )
    from_dir, from_tar = read(tmp_path / "src", tmp_path), read(tar, tmp_path)
    assert from_tar.name == "pets" and from_tar.classes == from_dir.classes == ["x", "y", "z"]
    for a, b in ((from_dir.train, from_tar.train), (from_dir.test, from_tar.test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_links_in_a_tar_count_like_in_a_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "src", n_per_class=2)
    cats = tmp_path / "src" / "train" / "cat"
    (cats / "zz-symlink.png").symlink_to("000.png")
    os.link(cats / "001.png", tmp_path / "src" / "train" / "dog" / "zz-hardlink.png")
    tar = make_tar(tmp_path / "src", tmp_path / "linked.tar")
    with tarfile.open(tar) as archive:
        kinds = {m.name.rsplit("/", 1)[-1]: m for m in archive.getmembers()}
    assert kinds["zz-symlink.png"].issym() and kinds["zz-hardlink.png"].islnk()
    from_dir, from_tar = read(tmp_path / "src", tmp_path), read(tar, tmp_path)
    assert len(from_tar.train) == 6
    np.testing.assert_array_equal(from_tar.train.images, from_dir.train.images)
    np.testing.assert_array_equal(from_tar.train.images[2], from_tar.train.images[0])


def test_dangling_link_in_a_tar(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "src", n_per_class=1)
    (tmp_path / "src" / "test" / "cat" / "gone.png").symlink_to("../../elsewhere/x.png")
    tar = make_tar(tmp_path / "src", tmp_path / "d.tar")
    with raises_one_line("test/cat/gone.png in", "links to '../../elsewhere/x.png'", "tar -h"):
        read(tar, tmp_path)
    # A link out of the archive is named as written, not as an empty name.
    (tmp_path / "src" / "test" / "cat" / "gone.png").unlink()
    (tmp_path / "src" / "test" / "cat" / "gone.png").symlink_to("../../../../etc/passwd.png")
    tar = make_tar(tmp_path / "src", tmp_path / "e.tar")
    with raises_one_line("links to '../../../../etc/passwd.png'", "tar -h"):
        read(tar, tmp_path)


def test_symlinks_in_a_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "elsewhere", classes=("bird",), n_per_class=1)
    write_image_folder(tmp_path / "r", n_per_class=1)
    (tmp_path / "r" / "train" / "bird").symlink_to(tmp_path / "elsewhere" / "train" / "bird")
    (tmp_path / "r" / "test" / "cat" / "loop").symlink_to(tmp_path / "r")  # a cycle
    data = read(tmp_path / "r", tmp_path)
    assert data.classes == ["bird", "cat", "dog"] and data.train.labels.tolist() == [0, 1, 2]
    (tmp_path / "r" / "test" / "dog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with raises_one_line("test/dog/gone.png cannot be read"):
        read(tmp_path / "r", tmp_path)


def test_wrapper_folder_in_a_directory(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "outer" / "inner", classes=("a", "b"), n_per_class=2, splits=())
    data = read(tmp_path / "outer", tmp_path, test_fraction=0.5)
    assert data.classes == ["a", "b"]


def test_lone_class_folder_is_not_a_wrapper(tmp_path: Path) -> None:
    """A folder holding one class folder is that class, not a wrapper to descend through;
    and one class is not a dataset."""
    write_image_folder(tmp_path / "one", classes=("only",), n_per_class=3, splits=())
    with raises_one_line("it has 1 class (only); a classifier needs at least two"):
        read(tmp_path / "one", tmp_path)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))


def test_truncated_tar(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "src", n_per_class=6, size=(32, 32))
    tar = make_tar(tmp_path / "src", tmp_path / "d.tar.gz")
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with raises_one_line(str(tar), "not a readable tar archive"):
        read(tar, tmp_path)
    assert not list((tmp_path / "cache").glob("**/*.npy"))


def test_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "notes.tgz"
    path.write_text("just text")
    with raises_one_line(str(path), "not a readable tar archive", "expected root/<class>/<image>"):
        read(path, tmp_path)


# --- bad input -----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with raises_one_line("nowhere: ", "nowhere does not exist", "expected root/<class>/<image>"):
        read(tmp_path / "nowhere", tmp_path)


def test_empty_folder_and_empty_tar(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no images here")
    with raises_one_line("holds no class folders with images", "root/train/<class>/<image>"):
        read(tmp_path / "empty", tmp_path)
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    with raises_one_line("empty.tar holds no class folders"):
        read(tmp_path / "empty.tar", tmp_path)


def test_class_folder_without_images(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=1)
    (tmp_path / "r" / "test" / "bird").mkdir()
    (tmp_path / "r" / "test" / "bird" / "notes.txt").write_text("todo")
    with raises_one_line("class folder test/bird", "holds no images"):
        read(tmp_path / "r", tmp_path)


def test_undecodable_image_is_named_and_nothing_is_cached(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=2)
    bad = tmp_path / "r" / "test" / "dog" / "001.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with raises_one_line(f"{bad} is not a readable image", "replace or delete it"):
        read(tmp_path / "r", tmp_path)
    assert not (tmp_path / "cache").exists()


def test_images_outside_class_folders(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=1, splits=())
    Image.new("RGB", (2, 2)).save(tmp_path / "r" / "stray.png")
    with raises_one_line("stray.png is not inside a class folder"):
        read(tmp_path / "r", tmp_path)


def test_train_without_test(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "r", n_per_class=1, splits=("train",))
    with raises_one_line("has train/ but no test/ folder"):
        read(tmp_path / "r", tmp_path)
    write_image_folder(tmp_path / "r", n_per_class=1, splits=("test", "val"))
    with raises_one_line("folders besides train/ and test/ (val)"):
        read(tmp_path / "r", tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 2},
        {"test_fraction": 1.0},
        {"test_fraction": 0},
        {"size": (0, 4)},
        {"size": (1, 2, 3)},
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        read(tmp_path, tmp_path, **kwargs)
