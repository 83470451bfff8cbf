"""Per-layer summary of a model: output shapes, parameters and multiply-accumulates.

One image is pushed through the model with forward hooks on the leaf modules.
MACs count convolutions and linear layers only (BatchNorm, activations and
pooling are a rounding error next to them and vanish into the conv at inference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from rich.table import Table
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...]  # per image, without the batch dimension
    params: int
    macs: int


@dataclass(frozen=True)
class Summary:
    input_shape: tuple[int, int, int]
    rows: tuple[LayerRow, ...]
    params: int
    trainable_params: int
    macs: int  # per image


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_image = out[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


def summarize(model: nn.Module, in_shape: tuple[int, int, int]) -> Summary:
    """Summarise ``model`` on one image of ``in_shape`` (C, H, W)."""
    rows: list[LayerRow] = []
    counted: set[int] = set()  # a module called twice holds its parameters once

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], torch.Tensor], None]:
        def record(module: nn.Module, _inputs: tuple[Any, ...], out: torch.Tensor) -> None:
            params = 0 if id(module) in counted else sum(p.numel() for p in module.parameters())
            counted.add(id(module))
            rows.append(
                LayerRow(
                    name, type(module).__name__, tuple(out.shape[1:]), params, _macs(module, out)
                )
            )

        return record

    leaves = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook(name)) for name, m in leaves]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *in_shape, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Summary(
        input_shape=in_shape,
        rows=tuple(rows),
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=sum(row.macs for row in rows),
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def render_summary(summary: Summary, title: str | None = None) -> Table:
    """The summary as a rich table, one row per leaf module and a total row."""
    table = Table(title=title, show_footer=True)
    table.add_column("layer", footer="total")
    table.add_column("type")
    table.add_column("output", footer=_shape(summary.rows[-1].output_shape) if summary.rows else "")
    table.add_column("params", justify="right", footer=f"{summary.params:,}")
    table.add_column("MACs", justify="right", footer=f"{summary.macs:,}")
    for row in summary.rows:
        table.add_row(
            row.name,
            row.type,
            _shape(row.output_shape),
            f"{row.params:,}" if row.params else "",
            f"{row.macs:,}" if row.macs else "",
        )
    table.caption = (
        f"input {_shape(summary.input_shape)}; {summary.trainable_params:,} trainable parameters; "
        f"{summary.macs / 1e6:,.2f} M multiply-accumulates per image"
    )
    return table
