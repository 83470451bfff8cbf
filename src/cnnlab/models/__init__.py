"""The model zoo: builtin models by name, models as TOML data, per-layer summaries."""

from cnnlab.models.registry import (
    LayerRow,
    ModelSpec,
    Summary,
    build_model,
    list_models,
    preferred_input_size,
    render_summary,
    resolve_model,
    summarize,
)

__all__ = [
    "LayerRow",
    "ModelSpec",
    "Summary",
    "build_model",
    "list_models",
    "preferred_input_size",
    "render_summary",
    "resolve_model",
    "summarize",
]
