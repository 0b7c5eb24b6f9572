"""SyncFreeLBFGS takes torch.optim.LBFGS's steps (max_iter=1, no line search) and never asks the
host for a number while it steps."""
from __future__ import annotations

import pytest
import torch

from torchstyle.lbfgs import SyncFreeLBFGS

N = 30


def _quadratic():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(N, N, generator=generator, dtype=torch.float64)
    a = a @ a.T + 0.1 * torch.eye(N, dtype=torch.float64)
    b = torch.randn(N, generator=generator, dtype=torch.float64)
    return lambda x: 0.5 * x @ a @ x - b @ x


def _rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _wavy(x):  # curvature of both signs: some pairs fail the s.y > 1e-10 test and are not kept
    return torch.cos(3 * x).sum() + 0.05 * (x**2).sum()


def _closure(optimizer, function):
    (x,) = optimizer.param_groups[0]["params"]

    def closure():
        optimizer.zero_grad()
        loss = function(x)
        loss.backward()
        return loss

    return closure


def _iterates(optimizer_class, function, start, steps, **options):
    x = start.clone().requires_grad_(True)
    optimizer = optimizer_class([x], **options)
    closure = _closure(optimizer, function)
    points = []
    for _ in range(steps):
        optimizer.step(closure)
        points.append(x.detach().clone())
    return points, optimizer


@pytest.mark.parametrize("capturable", [False, True])
@pytest.mark.parametrize("history", [3, 50])
@pytest.mark.parametrize("name, function, start, lr", [
    ("quadratic", _quadratic(), torch.linspace(-1, 1, N, dtype=torch.float64), 1.0),
    ("rosenbrock", _rosenbrock, torch.full((N,), -0.5, dtype=torch.float64), 0.5),
    ("wavy", _wavy, torch.linspace(-2, 2, N, dtype=torch.float64), 0.3),
])
def test_same_steps_as_torch_lbfgs(name, function, start, lr, history, capturable):
    theirs, _ = _iterates(torch.optim.LBFGS, function, start, 40, lr=lr, max_iter=1, history_size=history)
    ours, optimizer = _iterates(SyncFreeLBFGS, function, start, 40, lr=lr, history_size=history, capturable=capturable)
    for step, (a, b) in enumerate(zip(theirs, ours), 1):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-10, msg=lambda m, step=step: f"{name}, step {step}: {m}")
    if name != "wavy":  # every pair kept: the ring is full, or holds all 39 pairs
        kept = int((optimizer.state[optimizer.param_groups[0]["params"][0]]["ages"] >= 0).sum())
        assert kept == min(history, 39)


def test_pairs_with_too_little_curvature_are_not_kept():
    _, optimizer = _iterates(SyncFreeLBFGS, _wavy, torch.linspace(-2, 2, N, dtype=torch.float64), 40, lr=0.3,
                             history_size=50)
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    kept = int((state["ages"] >= 0).sum())
    assert 0 < kept < 39  # some of the 39 pairs had s.y <= 1e-10 (and the steps still match torch's)
    assert int(state["slot"]) == kept  # the ring advanced once per kept pair


def test_a_step_never_turns_a_tensor_into_a_python_number(monkeypatch):
    """On CUDA each such conversion waits for the GPU; torch.optim.LBFGS makes 2 per history entry."""
    x = torch.linspace(-1, 1, N).requires_grad_(True)
    optimizer = SyncFreeLBFGS([x], history_size=5)
    function = _quadratic()

    def closure():
        optimizer.zero_grad()
        loss = function(x.double()).float()
        loss.backward()
        return loss

    optimizer.step(closure)

    def refuse(*args, **kwargs):
        raise AssertionError("a tensor was read back to the host")

    for name in ("__bool__", "__float__", "__int__", "__index__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for _ in range(8):  # history fills and wraps
        optimizer.step(closure)
    monkeypatch.undo()
    assert function(x.detach().double()) < function(torch.linspace(-1, 1, N, dtype=torch.float64))


def test_capturable_state_keeps_its_memory_from_step_to_step():
    """What a CUDA graph replays reads and writes fixed addresses: no state tensor may be replaced."""
    _, optimizer = _iterates(SyncFreeLBFGS, _quadratic(), torch.linspace(-1, 1, N, dtype=torch.float64), 1,
                             history_size=4, capturable=True)
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    tensors = {name: value for name, value in state.items() if torch.is_tensor(value)}
    before = {name: (value.data_ptr(), value.shape) for name, value in tensors.items()}
    closure = _closure(optimizer, _quadratic())
    for _ in range(7):  # the ring fills and wraps
        optimizer.step(closure)
    assert {name: (state[name].data_ptr(), state[name].shape) for name in tensors} == before
    assert int(state["count"]) == 8


def test_history_memory_grows_with_the_pairs_unless_capturable():
    start = torch.linspace(-1, 1, N, dtype=torch.float64)
    for capturable, rows in ((False, [8, 8, 8, 8, 16, 16, 16, 16, 32, 32]), (True, [100] * 10)):
        x = start.clone().requires_grad_(True)
        optimizer = SyncFreeLBFGS([x], history_size=50, capturable=capturable)
        closure = _closure(optimizer, _quadratic())
        seen = []
        for _ in range(10):
            optimizer.step(closure)
            seen.append(optimizer.state[x]["pairs"].shape[0])
        assert seen == rows


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_no_cuda_synchronization_while_stepping():
    x = torch.linspace(-1, 1, N, device="cuda").requires_grad_(True)
    optimizer = SyncFreeLBFGS([x], history_size=5)

    def closure():
        optimizer.zero_grad()
        loss = ((x - 0.3) ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(8):
            optimizer.step(closure)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(x.detach(), torch.full_like(x, 0.3), rtol=0, atol=1e-4)


def test_one_tensor_only():
    with pytest.raises(ValueError, match="exactly one tensor"):
        SyncFreeLBFGS([torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="history_size must be >= 1"):
        SyncFreeLBFGS([torch.zeros(2, requires_grad=True)], history_size=0)

