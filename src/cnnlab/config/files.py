"""Reading settings from TOML files: I/O, encoding and syntax problems as one line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cnnlab.config.schema import TrainConfig, make_config
from cnnlab.errors import ConfigError


def read_toml_text(path: Path) -> tuple[str, dict[str, Any]]:
    """A TOML file's text and its parsed tables; I/O, encoding and syntax problems as one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (TOML must be UTF-8)") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror or exc}); pass a TOML file"
        ) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_toml(path: Path) -> dict[str, Any]:
    return read_toml_text(path)[1]


def load_config_file(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A config file, with command-line ``overrides`` (already nested) applied on top."""
    values = read_toml(path)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return make_config(values, where=str(path))
