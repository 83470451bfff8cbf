"""Reading settings from TOML files: I/O, encoding and syntax problems as one line."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.config.schema import TrainConfig, make_config, merge_settings, nested_form
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


def read_settings(path: Path) -> dict[str, Any]:
    """The settings of a TOML file, of a run folder's ``config.json``, or of a run folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{path}: a folder without config.json; pass a TOML file or a run folder"
            )
        path = path / "config.json"
    if path.suffix.lower() != ".json":
        return read_toml(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable config.json ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: not a cnnlab config.json (no settings object)")
    return values


def load_config_file(
    path: Path,
    overrides: dict[str, Any] | None = None,
    label: Callable[[str], str] | None = None,
) -> TrainConfig:
    """A config file (TOML, or a run's config.json), with command-line ``overrides``
    (already nested) applied on top."""
    values = merge_settings(nested_form(read_settings(path)), overrides or {})
    return make_config(values, where=str(path), label=label)
