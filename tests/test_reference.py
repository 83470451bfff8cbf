"""docs/settings.md is the schema's reference as generated now, and every example in it
is a valid setting that means what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.config.reference import example_of, settings_reference
from cnnlab.config.schema import field_of, make_config, nested_form, setting_keys

ROOT = Path(__file__).resolve().parent.parent
# What an example needs beside it to be valid on its own.
COMPANIONS = {"optimizer.nesterov": {"optimizer": "sgd"}, "early_stopping": {"val_fraction": 0.1}}


def test_the_committed_reference_is_the_generated_one():
    written = (ROOT / "docs" / "settings.md").read_text()
    assert written == settings_reference(), (
        "run: python -m cnnlab.config.reference > docs/settings.md"
    )


@pytest.mark.parametrize("key", setting_keys())
def test_each_example_is_a_valid_setting_that_sets_its_key(key):
    written, value = example_of(key)
    cfg = make_config(nested_form({**COMPANIONS.get(key, {}), written: value}))
    top, _, sub = key.partition(".")
    got = getattr(getattr(cfg, top), sub) if sub else getattr(cfg, top)
    expected = value
    if isinstance(got, tuple):
        expected = tuple(value)
    assert got == expected or (key == "augment" and got) or key == "data_dir", key
    assert field_of(key).description, f"{key} has no description"
