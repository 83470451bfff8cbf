"""The reference of every setting, generated from the schema (:class:`TrainConfig`), so it
cannot drift: ``docs/settings.md`` is this module's output, and a test checks that the
committed file is what it prints now. Each setting's example is a study-file line that
the test also validates against the schema.

    python -m cnnlab.config.reference > docs/settings.md
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from cnnlab.config.schema import field_of, flag_of, setting_keys, short_names

# Example values where the default says nothing (none, off, empty): what a user writes.
EXAMPLES: dict[str, Any] = {
    "model_args": {"batch_norm": True},
    "epochs": 15,
    "optimizer.name": "sgd",
    "optimizer.lr": 0.05,
    "optimizer.nesterov": True,
    "optimizer.weight_decay": 5e-4,
    "schedule.name": "cosine",
    "schedule.warmup_epochs": 1.0,
    "label_smoothing": 0.1,
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "tta": "flip",
    "evaluate": "end",
    "compile": True,
    "augment": "rotate=20,translate=0.1,crop=0.8",
    "val_fraction": 0.1,
    "early_stopping": 5,
    "precision": "fp32",
    "device": "cuda",
    "deterministic": True,
    "data_dir": "~/data",
    "tensorboard": True,
    "keep_checkpoints": [5, 10],
}


def type_text(annotation: Any) -> str:
    """A field's type in a reader's words."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return f"{type_text(inner[0])} or none" if len(inner) == 1 else "value"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    if get_origin(annotation) is tuple:
        parts = get_args(annotation)
        return "list of integers" if parts[-1] is Ellipsis else f"{len(parts)} numbers"
    if get_origin(annotation) is dict:
        return "table"
    return {int: "integer", float: "number", str: "text", bool: "true or false"}.get(
        annotation, str(annotation)
    )


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def example_of(key: str) -> tuple[str, Any]:
    """The study-file key a user writes (the short name for nested settings) and a value."""
    default = field_of(key).get_default(call_default_factory=True)
    value = EXAMPLES.get(key, default)
    top, _, sub = key.partition(".")
    written = top if sub == "name" else (sub if sub and short_names().get(sub) == key else key)
    return written, value


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_reference() -> str:
    """The Markdown reference of every setting."""
    lines = [
        "# Settings reference",
        "",
        "Every setting of a run, generated from the schema by `python -m "
        "cnnlab.config.reference` (a test keeps this page equal to its output). The same "
        "names work everywhere: in a study's `[defaults]` and `[[variant]]` tables, in a "
        "`[grid]` (the dotted key), in `cnnlab train --config FILE`, as `cnnlab train` flags "
        "and as keyword arguments of `cnnlab.train()`. A nested setting can be written by "
        "its short name (`lr = 0.05` is `optimizer = { lr = 0.05 }`), and a table by its "
        'name alone (`optimizer = "sgd"`).',
        "",
        "| key | flag | type | default | what it does | example |",
        "|---|---|---|---|---|---|",
    ]
    for key in setting_keys():
        field = field_of(key)
        default = field.get_default(call_default_factory=True)
        shown = "none" if default in (None, "", (), {}) else toml_value(default)
        written, value = example_of(key)
        flag = _flag(key)
        lines.append(
            f"| `{key}` | `{flag}` | {type_text(field.annotation)} | `{_cell(shown)}` | "
            f"{_cell(field.description or '')} | `{_cell(written)} = {_cell(toml_value(value))}` |"
        )
    return "\n".join([*lines, "", STUDY_TABLES, ""])


def _flag(key: str) -> str:
    return "--model-arg KEY=VALUE" if key == "model_args" else flag_of(key)


STUDY_TABLES = """## The tables of a study file

| table | keys |
|---|---|
| `[study]` | `name`, `dataset` (as `--dataset`: `mnist`, `cifar10`, `folder:PATH`, ...), `seeds` (a list, e.g. `[0, 1, 2]`, or seeds until decided: `{ start = 3, max = 12 }`, see [sequential.md](sequential.md)), optional `description`, `baseline` (a variant's name; default the first) |
| `[defaults]` | any setting above, for every variant |
| `[[variant]]` | `name`, then any setting above (over `[defaults]`) |
| `[grid]` | dotted setting keys, each a list of values, crossed with every variant (or alone: the grid's points are the variants); optional `name = "{optimizer}+bn={batch_norm}"` names the points (`{variant}` and each key's label); a grid over two or more keys gets its analysis of variance |
| `[[claim]]` | `says`, optional `evidence`, and one of: `better`/`worse` with `than`; `same` (two variants) with `margin` (points); `increasing`/`decreasing` (three or more, in order); `peak` with `over`; `factor` (a grid key) with `better`/`worse` and `than` as two of its values |
| `[search]` | a search to run first, its winners confirmed over the seeds: see [search.md](search.md) |

`cnnlab init my-study.toml` writes a commented starter study."""


if __name__ == "__main__":
    print(settings_reference(), end="")
