"""Property-based tests: whatever bytes or settings a reader or validator is given, it
either returns a result or raises a CnnlabError of one line; it never raises anything
else (which the CLI would show as a traceback).

Examples are drawn deterministically (the `ci` profile) so that CI is repeatable; set
CNNLAB_HYPOTHESIS=explore to search with fresh random examples, 20x as many.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fakedata import _dump_like_original, idx_bytes, write_cifar10_batches
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cnnlab.errors import CnnlabError

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore", parent=settings.get_profile("ci"), max_examples=1200, derandomize=False
)
settings.load_profile(os.environ.get("CNNLAB_HYPOTHESIS", "ci"))


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is shared by all of a test's examples)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def one_line_or_result(call: Callable[[], Any], *names: object) -> Any:
    """The call's result, or None after checking that it raised one line naming ``names``."""
    try:
        return call()
    except CnnlabError as exc:
        first, *more = str(exc).split("\n")
        assert first.strip(), "empty message"
        # A study or model file reports all its problems at once: "F: N problems:", then
        # one line per problem, each naming the file again.
        assert not more or first.endswith(f"{len(more)} problems:"), str(exc)
        for line in (first, *more):
            for name in names:
                assert str(name) in line, f"{name} not named in {line!r}"
        return None


# --- IDX headers ---------------------------------------------------------------------------

big = st.integers(0, 2**32 - 1)
dims = st.lists(st.one_of(st.integers(0, 30), big), min_size=0, max_size=5)


@st.composite
def idx_files(draw: st.DrawFn) -> bytes:
    shape = draw(dims)
    type_code = draw(st.sampled_from([0x08, 0x08, 0x09, 0x0B, 0x0D, 0x00, 0xFF]))
    ndim = draw(st.one_of(st.just(len(shape)), st.integers(0, 255)))
    magic = draw(st.one_of(st.just((type_code << 8) | ndim), st.integers(0, 2**32 - 1)))
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    wanted = math.prod(shape) if shape else 0
    body_size = draw(
        st.one_of(st.just(min(wanted, 10_000)), st.integers(0, 2_000), st.just(wanted + 1))
    )
    data = header + bytes(min(body_size, 20_000))
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    return gzip.compress(data, mtime=0) if draw(st.booleans()) else data


@given(idx_files(), st.booleans())
def test_idx_readers_never_crash(data: bytes, labels: bool):
    from cnnlab.data.formats import read_idx_images, read_idx_labels

    with scratch() as folder:
        path = folder / "train-images-idx3-ubyte.gz"
        path.write_bytes(data)
        read = (lambda: read_idx_labels(path, 10)) if labels else (lambda: read_idx_images(path))
        result = one_line_or_result(read, path.name)
        if result is not None:
            assert isinstance(result, np.ndarray) and result.dtype in (np.uint8, np.int64)


def test_idx_reader_reads_what_it_is_given():
    """The property above is not vacuous: a well-formed file is read, not refused."""
    from cnnlab.data.formats import read_idx_images

    with scratch() as folder:
        images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        (folder / "x").write_bytes(idx_bytes(images))
        assert read_idx_images(folder / "x")[:, 0].tolist() == images.tolist()


# --- CIFAR pickles -------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=20),
    st.text(max_size=10),
    hnp.arrays(
        st.sampled_from([np.uint8, np.int64, np.float32, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=40),
    ),
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from([b"data", b"labels", b"label_names", b"batch_label", b"filenames", "data"])


@st.composite
def cifar_batches(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 12))
    near_valid: dict[Any, Any] = {
        b"data": draw(
            st.one_of(
                hnp.arrays(np.uint8, st.just((n, 3072))),
                hnp.arrays(
                    st.sampled_from([np.uint8, np.float64]),
                    hnp.array_shapes(max_dims=3, max_side=50),
                ),
            )
        ),
        b"labels": draw(st.one_of(st.lists(st.integers(-3, 12), min_size=n, max_size=n), values)),
    }
    batch = draw(st.one_of(st.just(near_valid), st.dictionaries(keys, values, max_size=4), values))
    raw = pickle.dumps(batch, protocol=draw(st.integers(2, 5)))
    if draw(st.booleans()):  # damage: cut or flip a byte
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        raw = (
            raw[:at] if draw(st.booleans()) else raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
        )
    return raw


@given(cifar_batches(), st.sampled_from(["data_batch_1", "test_batch", "batches.meta"]))
# found by the explore profile: ragged labels made numpy raise ValueError
@example(
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [None, []]}), "test_batch"
)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_cifar_reader_never_crashes(raw: bytes, which: str):
    from cnnlab.data.formats import read_cifar10

    with scratch() as folder:
        write_cifar10_batches(folder, n_per_batch=4)
        (folder / which).write_bytes(raw)
        result = one_line_or_result(lambda: read_cifar10(folder), which)
        if result is not None:
            assert len(result.train) + len(result.test) > 0


def test_cifar_reader_accepts_what_it_writes():
    from cnnlab.data.formats import read_cifar10

    with scratch() as folder:
        written = write_cifar10_batches(folder, n_per_batch=4)
        _dump_like_original(folder / "junk", {b"x": 1})  # an extra file is ignored
        assert read_cifar10(folder).train.labels.tolist() == written.train.labels.tolist()


# --- tar members ---------------------------------------------------------------------------


def png(size: tuple[int, int], mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 1).save(buffer, format="PNG")
    return buffer.getvalue()


PNGS = [png((4, 4), "L"), png((6, 4), "RGB"), png((4, 4), "RGBA"), png((1, 1), "P")]
name_parts = st.sampled_from(
    ["train", "test", "cat", "dog", "..", ".", "", "a.png", "b.jpg", "x", "~"]
)
member_names = st.one_of(
    st.lists(name_parts, min_size=1, max_size=4).map("/".join),
    st.text(max_size=20),
    st.sampled_from(["train/cat/0.png", "train/dog/0.png", "test/cat/0.png", "test/dog/0.png"]),
)
member_types = st.sampled_from(
    [tarfile.REGTYPE] * 6
    + [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
)
member_data = st.one_of(st.sampled_from(PNGS), st.binary(max_size=64))


@st.composite
def tars(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=draw(st.sampled_from(["w", "w:gz"]))) as tar:
        for _ in range(draw(st.integers(0, 8))):
            info = tarfile.TarInfo(draw(member_names))
            info.type = draw(member_types)
            data = draw(member_data) if info.type == tarfile.REGTYPE else b""
            info.size = len(data)
            if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = draw(member_names)
            try:
                tar.addfile(info, io.BytesIO(data) if data else None)
            except ValueError:  # tarfile refuses to write a few names (e.g. with NUL)
                continue
    raw = buffer.getvalue()
    return raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw


@given(tars())
@example(b"\x1f\x8b\x08")  # found by the explore profile: tarfile raised TypeError
def test_tar_reader_never_crashes(raw: bytes):
    from cnnlab.data.folder import read_image_folder

    with scratch() as folder:
        path = folder / "p.tar.gz"
        path.write_bytes(raw)
        result = one_line_or_result(lambda: read_image_folder(path, cache_dir=folder / "cache"))
        if result is not None:
            assert len(result.classes) >= 2 and len(result.train) and len(result.test)
