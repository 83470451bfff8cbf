"""Every dataset cnnlab can load, by reference: the built-ins read from canonical files,
the ``digits-wild`` composite and ``folder:PATH``, as ordinary entries of one registry.

:func:`load_dataset` takes a reference (text or parsed, see :mod:`cnnlab.config.dataset`);
:class:`DataCache` is the one explicit cache of loaded datasets and of what runs derive
from them (padded splits, channel statistics), owned by whoever runs several runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab import heartbeat
from cnnlab.config.dataset import DIGITS_WILD, DatasetRef, parse_dataset
from cnnlab.data import sources
from cnnlab.data.arrays import DatasetArrays, check_splits
from cnnlab.data.folder import read_image_folder
from cnnlab.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One loadable dataset: how to find it in a data dir, and how to read it."""

    name: str
    description: str
    expected: str  # what must be there, for `data list` and error messages
    locate: Callable[[Path], tuple[sources.Found | None, list[Path]]]
    load: Callable[[DatasetRef, Path, bool], DatasetArrays]


def _files_entry(source: sources.DatasetSource) -> Entry:
    return Entry(
        source.name,
        source.description,
        source.expected,
        lambda data_dir: sources.locate(source.name, data_dir),
        lambda ref, data_dir, download: sources.load_builtin(ref.name, data_dir, download),
    )


def _locate_digits_wild(data_dir: Path) -> tuple[sources.Found | None, list[Path]]:
    """The composite is available wherever MNIST is; SVHN joins it when found too."""
    mnist, searched = sources.locate("mnist", data_dir)
    if mnist is None:
        return None, searched
    return sources.Found(mnist.location, lambda: load_dataset(DIGITS_WILD, data_dir)), searched


def _load_digits_wild(ref: DatasetRef, data_dir: Path, download: bool) -> DatasetArrays:
    from cnnlab.data.digits_wild import Parts, load_digits_wild

    try:
        mnist = sources.load_builtin("mnist", data_dir, download=download)
    except DataError as exc:
        raise DataError(f"{DIGITS_WILD} is built on MNIST, which is missing. {exc}") from exc
    found, searched = sources.locate("svhn", data_dir)
    parts = Parts(mnist, None if found is None else found.location, searched)
    return load_digits_wild(ref.text, parts)


ENTRIES: dict[str, Entry] = {
    **{name: _files_entry(source) for name, source in sources.SOURCES.items()},
    DIGITS_WILD: Entry(
        DIGITS_WILD,
        "MNIST + printed digits (+ SVHN when found), 3x32x32, test split per domain; options "
        "digits-wild:size=28,mnist=1,printed=1,svhn=1 (train weights)",
        "mnist's files (see mnist); svhn's optional; printed digits are generated",
        _locate_digits_wild,
        _load_digits_wild,
    ),
}


def dataset_names() -> list[str]:
    return list(ENTRIES)


def locate(name: str, data_dir: Path | None = None) -> tuple[sources.Found | None, list[Path]]:
    """Find a registered dataset; how to read it (or None) and every folder searched."""
    if name not in ENTRIES:
        parse_dataset(name)  # the one-line "unknown dataset" error, with a suggestion
        raise DataError(f"{name}: not a registered dataset; use one of {', '.join(ENTRIES)}")
    return ENTRIES[name].locate(data_dir or sources.default_data_dir())


def load_dataset(
    dataset: str | DatasetRef, data_dir: Path | None = None, download: bool = False
) -> DatasetArrays:
    """Read a dataset (``mnist``, ``cifar10``, ``digits-wild:size=28``, ``folder:PATH``)."""
    ref = parse_dataset(dataset) if isinstance(dataset, str) else dataset
    heartbeat.doing(f"loading {ref.text} (the first time decodes and caches it)")
    if ref.kind == "arrays":
        raise DataError(
            f"dataset '{ref.text}' was made from arrays in Python and is not stored anywhere; "
            "pass it again (cnnlab.train(..., data=...), cnnlab.run_study(..., data=...)) or "
            "save the images as an image folder"
        )
    if ref.kind == "folder":
        data = read_image_folder(ref.path)
    else:
        data = ENTRIES[ref.name].load(ref, data_dir or sources.default_data_dir(), download)
    return check_splits(data)  # before any run trains on it


class DataCache:
    """Loaded datasets by (reference, data dir), and one derived value per dataset key.

    A study's runs share one dataset: loading MNIST again for each run, or padding and
    measuring its 60k images again (0.4-0.5 s a run), would cost every run the same.
    """

    def __init__(self) -> None:
        self._datasets: dict[tuple[str, str | None], DatasetArrays] = {}
        self._derived: tuple[Hashable, Any] | None = None

    def dataset(self, dataset: str | DatasetRef, data_dir: str | Path | None) -> DatasetArrays:
        key = (str(dataset), None if data_dir is None else str(data_dir))
        if key not in self._datasets:
            self._datasets[key] = load_dataset(dataset, Path(data_dir) if data_dir else None)
        return self._datasets[key]

    def hold(self, data: DatasetArrays, data_dir: str | Path | None = None) -> None:
        """Serve ``data`` (e.g. arrays from Python) for its own name, as if loaded."""
        self._datasets[(data.name, None if data_dir is None else str(data_dir))] = data

    def derived(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, remembered for the last ``key`` only (the splits it holds are big)."""
        if self._derived is None or self._derived[0] != key:
            self._derived = (key, make())
        return self._derived[1]
