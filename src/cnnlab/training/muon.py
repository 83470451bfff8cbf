"""Muon for convolution filters, Nesterov SGD for every other parameter: the optimizer
of the CIFAR-10 speed-run records (Keller Jordan's airbench94_muon).

Each filter bank's momentum is orthogonalised (its singular values pushed towards 1 by
a Newton-Schulz iteration), so every direction of the filters moves at the same rate
whatever the gradient's scale; before each step the bank is rescaled to norm
sqrt(filters), which changes nothing a convolution feeding batch norm computes (for a
net without batch norm it does: use SGD or Adam there). ``torch.optim.Muon`` is not
used: it takes 2-D parameters only, and orthogonalises in bf16, which a CPU without
native bf16 (AVX2) emulates at a fraction of fp32's speed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.sgd import sgd

# Quintic Newton-Schulz coefficients (Keller Jordan's Muon, also torch.optim.Muon's).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 3  # airbench94_muon's count for conv filters (torch.optim.Muon's default: 5)
EPS = 1e-7


def orthogonalized(matrix: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """``matrix`` (2-D) with its singular values moved near 1 and its singular vectors
    kept: about U V^T of its SVD U S V^T, in fp32."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.float()
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    x = x / (x.norm() + EPS)  # every singular value now at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


def is_filter(p: torch.Tensor) -> bool:
    """A parameter Muon steps: a trainable convolution filter bank (out, in, kh, kw)."""
    return p.requires_grad and p.ndim == 4


class MuonSGD(torch.optim.Optimizer):
    """Param groups with ``muon=True`` step by Muon, the others by SGD with (Nesterov)
    momentum and L2 weight decay. A group's ``lr_scale`` multiplies the learning rate the
    schedule sets, so one schedule drives both kinds of group."""

    def __init__(
        self, groups: Iterable[dict[str, Any]], lr: float, momentum: float, nesterov: bool
    ) -> None:
        defaults = {
            "lr": lr, "lr_scale": 1.0, "muon": False, "weight_decay": 0.0,
            "momentum": momentum, "nesterov": nesterov,
        }  # fmt: skip
        super().__init__(list(groups), defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:  # torch's optimizer contract: the loss computed again
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"] * group["lr_scale"]
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                for p in params:
                    _muon_step(self.state[p], p, group, lr)
            else:
                self._sgd_steps(params, group, lr)
        return loss

    def _sgd_steps(self, params: list[torch.Tensor], group: dict[str, Any], lr: float) -> None:
        """torch's own SGD step (single-tensor, as torch.optim.SGD on a CPU), keeping its
        momentum buffers in this optimizer's state, so checkpoints hold them as SGD's do."""
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        sgd(
            params, [p.grad for p in params], buffers, foreach=False,
            weight_decay=group["weight_decay"], momentum=group["momentum"], lr=lr,
            dampening=0.0, nesterov=group["nesterov"], maximize=False,
        )  # fmt: skip
        for p, buffer in zip(params, buffers, strict=True):
            self.state[p]["momentum_buffer"] = buffer  # filled on the first step


def _momentum(state: dict[str, Any], grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    """The momentum buffer updated with ``grad``; the direction a step takes."""
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(grad)
    buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
    return grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer


def _muon_step(state: dict[str, Any], p: torch.Tensor, group: dict[str, Any], lr: float) -> None:
    direction = _momentum(state, p.grad, group)
    p.mul_(len(p) ** 0.5 / (p.norm() + EPS))  # batch norm after it undoes the scale
    update = orthogonalized(direction.reshape(len(p), -1)).view_as(p)
    p.add_(update.to(p.dtype), alpha=-lr)
