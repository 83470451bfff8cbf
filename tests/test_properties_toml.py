"""Property-based tests for the study and model file validators: any TOML document, and
any text at all, gives a study / a model or one CnnlabError naming the file; never a
traceback. (Profiles as in test_properties.py.)"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_properties import one_line_or_result, scratch

from cnnlab.config.schema import setting_keys

# --- a small TOML writer: enough for the values drawn here --------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what is drawn here
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def toml_table(header: str, table: dict[str, Any]) -> str:
    return f"{header}\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in table.items())


words = st.sampled_from(
    ["mnist", "fashion-mnist", "folder:photos", "digits-wild:size=28", "mlp", "lenet5", "adam",
     "sgd", "flip", "rotate=20", "cosine", "fp32", "cpu", "auto", "a", "b", "same", "classes"]
)  # fmt: skip
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    words,
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["name", "lr", "momentum", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)
setting_names = st.one_of(
    st.sampled_from(sorted(setting_keys())), st.sampled_from(["lr", "epoch", "x"])
)
settings_tables = st.dictionaries(setting_names, values, max_size=5)


@st.composite
def study_files(draw: st.DrawFn) -> str:
    study = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(words, values),
                "dataset": st.one_of(words, values),
                "seeds": st.one_of(st.lists(st.integers(-2, 2**40), max_size=4), values),
                "baseline": st.one_of(words, values),
                "descripton": values,
            },
        )
    )
    text = toml_table("[study]", study) + toml_table("[defaults]", draw(settings_tables))
    for variant in draw(st.lists(settings_tables, max_size=3)):
        named = {"name": draw(st.one_of(words, values)), **variant}
        text += toml_table("[[variant]]", named)
    if draw(st.booleans()):
        grid = draw(
            st.dictionaries(
                st.sampled_from(["optimizer.lr", "epochs", "lr", "seed"]), values, max_size=2
            )
        )
        text += toml_table("[grid]", grid)
    if draw(st.booleans()):
        text += toml_table(draw(st.sampled_from(["[defauts]", "[[grid]]", "[study.x]"])), {"a": 1})
    return text


@given(study_files())
def test_study_files_never_crash(text: str):
    from cnnlab.study.plan.study_file import load_study

    with scratch() as folder:
        path = folder / "study.toml"
        path.write_text(text)
        one_line_or_result(lambda: load_study(path), "study.toml")


@given(st.text(max_size=200))
def test_any_text_as_a_study_file_never_crashes(text: str):
    from cnnlab.study.plan.study_file import load_study

    with scratch() as folder:
        path = folder / "study.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        one_line_or_result(lambda: load_study(path), "study.toml")


layer_keys = st.sampled_from(
    ["filters", "kernel", "stride", "padding", "units", "size", "rate", "fn", "activation",
     "negative_slope", "momentum", "eps", "bias", "init", "slope"]
)  # fmt: skip
layer_values = st.one_of(
    st.integers(-2, 40),
    st.just(10**11),
    st.integers(2**31, 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.sampled_from(["same", "valid", "classes", "relu", "leaky_relu", "kaiming", "x"]),
    st.lists(st.integers(-1, 9), min_size=0, max_size=3),
)
layer_types = st.sampled_from(
    ["conv", "dense", "batch_norm", "activation", "leaky_relu", "relu", "gelu", "max_pool",
     "avg_pool", "dropout", "whiten", "flatten", "global_avg_pool", "global_max_pool", "convv"]
)  # fmt: skip


@st.composite
def model_files(draw: st.DrawFn) -> str:
    layers = []
    for _ in range(draw(st.integers(0, 6))):
        layer = {
            "type": draw(layer_types),
            **draw(st.dictionaries(layer_keys, layer_values, max_size=3)),
        }
        layers.append(toml_value(layer))
    header = toml_table("", {"name": draw(st.one_of(words, st.integers()))}).lstrip("\n")
    return header + "layer = [" + ", ".join(layers) + "]\n"


@given(
    model_files(),
    st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40)),
    st.integers(1, 12),
)
def test_model_files_never_crash(text: str, shape: tuple[int, int, int], classes: int):
    from cnnlab.models.registry import build_model, resolve_model

    with scratch() as folder:
        path = folder / "m.toml"
        path.write_text(text)
        spec = one_line_or_result(lambda: resolve_model(str(path)), "m.toml")
        if spec is not None:
            one_line_or_result(lambda: build_model(spec, shape, classes))
