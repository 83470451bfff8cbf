"""Dataset references: ``mnist``, ``digits-wild:size=28,svhn=0`` or ``folder:PATH``, parsed once.

A run's ``dataset`` setting is written as text (config files, study files, the run
identity hash); :func:`parse_dataset` turns it into a :class:`DatasetRef` when the setting
is validated, so a misspelt option fails before anything runs, and the data layer
dispatches on the parsed form instead of on string prefixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from cnnlab.errors import ConfigError

FOLDER_PREFIX = "folder:"
# Arrays handed over in Python (cnnlab.Dataset.from_arrays): "arrays:<name>#<content hash>",
# so that two different sets of arrays never share a run id.
ARRAYS_PREFIX = "arrays:"
DIGITS_WILD = "digits-wild"
# The datasets read from canonical files (cnnlab.data.sources holds their readers).
BUILTIN_FILES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
DATASET_NAMES = (*BUILTIN_FILES, DIGITS_WILD)
DIGITS_WILD_SIZES = (32, 28)
# How varied the printed training digits are (cnnlab.data.printed_style); the test
# domains are always drawn in the first, less its training-only plates and embossing.
PRINTED_STYLES = ("full", "basic")
_OPTIONS_HELP = (
    "valid options: size=32|28, mnist=W, printed=W, svhn=W with weights W >= 0 for the "
    "train split (0 = off, 0.5 = half, 2 = twice), styles=full|basic (how varied the "
    "printed training digits are), e.g. digits-wild:size=28,svhn=0"
)


@dataclass(frozen=True)
class DigitsWildOptions:
    """What a ``digits-wild:...`` name asks for; weights are per train part."""

    size: int = 32
    mnist: float = 1.0
    printed: float = 1.0
    svhn: float = 1.0
    styles: str = "full"


@dataclass(frozen=True)
class DatasetRef:
    """A parsed dataset reference; ``text`` is exactly what was written (it is hashed)."""

    text: str
    kind: str  # "files" (a built-in read from canonical files), "digits-wild", "folder", "arrays"
    name: str  # the built-in name, "digits-wild", or the folder path as written
    options: DigitsWildOptions = field(default_factory=DigitsWildOptions)

    @property
    def path(self) -> Path:
        """The folder or archive of a ``folder:`` reference."""
        if self.kind != "folder":
            raise ValueError(f"{self.text} is not a folder reference")
        return Path(self.name).expanduser()

    def relative_to(self, base: Path) -> DatasetRef:
        """A ``folder:`` path made absolute against ``base`` (others unchanged)."""
        if self.kind != "folder":
            return self
        return parse_dataset(FOLDER_PREFIX + str((base / self.path).resolve()))

    def __str__(self) -> str:
        return self.text


def parse_dataset(text: str) -> DatasetRef:
    """Parse a dataset reference; ConfigError naming what is allowed."""
    if text.startswith(FOLDER_PREFIX):
        path = text[len(FOLDER_PREFIX) :]
        if not path.strip():
            raise ConfigError(f"dataset {text!r}: write folder:PATH, e.g. folder:photos/")
        return DatasetRef(text, "folder", path)
    if text.startswith(ARRAYS_PREFIX) and text[len(ARRAYS_PREFIX) :].strip():
        return DatasetRef(text, "arrays", text[len(ARRAYS_PREFIX) :])
    if text == DIGITS_WILD or text.startswith(DIGITS_WILD + ":"):
        return DatasetRef(text, DIGITS_WILD, DIGITS_WILD, _digits_wild_options(text))
    if text in BUILTIN_FILES:
        return DatasetRef(text, "files", text)
    from cnnlab.config.suggest import did_you_mean

    raise ConfigError(
        f"unknown dataset '{text}'{did_you_mean(text, DATASET_NAMES)}; built-in: "
        f"{', '.join(DATASET_NAMES)} (with options, e.g. {DIGITS_WILD}:size=28,svhn=0), or "
        f"{FOLDER_PREFIX}PATH for an image folder or a .tar/.tar.gz of one"
    )


def _digits_wild_options(name: str) -> DigitsWildOptions:
    text = name[len(DIGITS_WILD) + 1 :].strip()
    values: dict[str, float | int | str] = {}
    known = {f.name for f in fields(DigitsWildOptions)}
    for item in text.split(",") if text else []:
        key, has_value, raw = (part.strip() for part in item.partition("="))
        if key not in known:
            raise ConfigError(
                f"{DIGITS_WILD}: unknown option {key or item!r} in {name!r}; {_OPTIONS_HELP}"
            )
        if key in values:
            raise ConfigError(f"{DIGITS_WILD}: {key} given twice in {name!r}; {_OPTIONS_HELP}")
        if not has_value:
            raise ConfigError(f"{DIGITS_WILD}: {key} needs a value in {name!r}; {_OPTIONS_HELP}")
        values[key] = _option_value(key, raw, name)
    return DigitsWildOptions(**values)  # type: ignore[arg-type]


def _option_value(key: str, raw: str, name: str) -> float | int | str:
    if key == "styles":
        if raw not in PRINTED_STYLES:
            raise ConfigError(
                f"{DIGITS_WILD}: styles={raw} is invalid in {name!r}; styles takes "
                + " or ".join(PRINTED_STYLES)
            )
        return raw
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if key == "size":
        if number not in DIGITS_WILD_SIZES:
            raise ConfigError(
                f"{DIGITS_WILD}: size={raw} is invalid in {name!r}; size takes 32 or 28"
            )
        return int(number)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"{DIGITS_WILD}: {key}={raw} is invalid in {name!r}; a weight is a number >= 0 "
            "(0 = off, 0.5 = half, 2 = twice)"
        )
    return number
