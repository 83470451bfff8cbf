"""The Muon optimizer for conv filters: orthogonalised steps, filter norms held, and
plain Nesterov SGD for every other parameter."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.config.schema import OptimizerConfig
from cnnlab.training.muon import orthogonalized
from cnnlab.training.recipe import make_optimizer, set_lr


def test_orthogonalizing_keeps_the_singular_vectors_and_evens_the_values():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(32, 32))
    v, _ = torch.linalg.qr(torch.randn(216, 32))
    spread = torch.logspace(-2, 0, 32)  # singular values 100x apart
    out = orthogonalized(u @ torch.diag(spread) @ v.T)
    values = torch.linalg.svdvals(out)
    assert values.max() < 1.5 and values.max() / values.min() < 10  # was 100: evened out
    inner = u.T @ out @ v  # diagonal when the singular vectors are kept
    off = inner - torch.diag(torch.diagonal(inner))
    assert off.norm() < 1e-3 * inner.norm()
    assert orthogonalized(torch.randn(216, 32)).shape == (216, 32)  # tall as well as wide


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 36, 10)
    )


def steps(net: nn.Module, optimizer: torch.optim.Optimizer, n: int) -> None:
    torch.manual_seed(1)
    for _ in range(n):
        x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        set_lr(optimizer, 0.1, 0.5)
        optimizer.step()


def test_filters_step_by_muon_at_their_own_rate_and_the_rest_by_sgd():
    cfg = OptimizerConfig(name="muon", lr=0.1, nesterov=True, weight_decay=5e-4, muon_lr=0.02)
    ours, reference = model(), model()
    steps(ours, make_optimizer(ours, cfg), 1)  # one step: the gradients are the same
    sgd = OptimizerConfig(name="sgd", lr=0.1, nesterov=True, weight_decay=5e-4)
    steps(reference, make_optimizer(reference, sgd), 1)
    # The head and batch norm took SGD's step, to rounding...
    for name in ("1.weight", "1.bias", "3.weight", "3.bias"):
        torch.testing.assert_close(ours.state_dict()[name], reference.state_dict()[name])
    # ...while the filters moved by an orthogonalised one.
    assert not torch.allclose(ours.state_dict()["0.weight"], reference.state_dict()["0.weight"])


def test_the_filter_bank_keeps_its_norm_step_after_step():
    net = model()
    steps(net, make_optimizer(net, OptimizerConfig(name="muon", lr=0.1, muon_lr=0.3)), 3)
    # sqrt(filters) before each step's update; the update (lr 0.3 x 0.5) moves it a little
    assert abs(net.state_dict()["0.weight"].norm().item() - 8**0.5) < 0.1 * 8**0.5


def test_the_filters_learning_rate_is_muon_lr_times_the_schedule():
    net = model()
    optimizer = make_optimizer(net, OptimizerConfig(name="muon", lr=0.4, muon_lr=0.05))
    set_lr(optimizer, 0.4, 0.5)
    rates = sorted(g["lr"] * g["lr_scale"] for g in optimizer.param_groups)
    assert rates == [0.025, 0.2, 0.2]
    assert optimizer.param_groups[0]["lr"] == 0.2  # the reported lr: SGD's


def test_a_closure_is_called_and_its_loss_returned():
    net = model()
    optimizer = make_optimizer(net, OptimizerConfig(name="muon", lr=0.1))
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    before = net.state_dict()["3.weight"].clone()
    assert optimizer.step(closure) is not None
    assert not torch.equal(before, net.state_dict()["3.weight"])  # it stepped on those grads
