"""Weight averaging: an exponential moving average of the weights, evaluated instead of them.

Speed-run recipes (DAWNBench ResNet-9, airbench) evaluate an average of recent weights:
with a large learning rate the raw weights jitter around a minimum the average sits
closer to, worth a few tenths of a point at no extra gradient steps.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# The average starts at the initial weights; ramping the decay in over the first steps keeps
# those random weights from dominating it (the usual (1 + t) / (10 + t) warm-up).
WARMUP_OFFSET = 10


class WeightAverage:
    """An EMA copy of ``model``: floating-point parameters and buffers (BN statistics) are
    averaged; integer buffers (BN's batch counter) follow the model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # state_dict() tensors share storage with the modules: cache the pairs once.
        ours, theirs = self.model.state_dict(), model.state_dict()
        pairs = [(ours[k], theirs[k]) for k in ours]
        self._avg = [a for a, m in pairs if a.is_floating_point()]
        self._src = [m for a, m in pairs if a.is_floating_point()]
        self._copy = [(a, m) for a, m in pairs if not a.is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the model's current weights after optimizer step ``step`` (0-based)."""
        decay = min(self.decay, (1 + step) / (WARMUP_OFFSET + step))
        torch._foreach_lerp_(self._avg, self._src, 1.0 - decay)
        for avg, src in self._copy:
            avg.copy_(src)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
