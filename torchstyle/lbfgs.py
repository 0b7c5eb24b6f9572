"""L-BFGS that never waits for the device: every decision and every number stays a tensor.

``torch.optim.LBFGS`` turns tensors into Python numbers twice per history entry (``alpha=-al[i]``
in its two-loop recursion) and once per check, so on CUDA each step stops for the GPU about
``2 * history_size`` times and launches some ``6 * history_size`` tiny kernels; PyTorch's own
trackers note it (pytorch/pytorch#118018, #145710, pytorch/xla#1394). :class:`SyncFreeLBFGS`
takes the same steps as ``torch.optim.LBFGS(lr, max_iter=1, history_size=m)`` without a line
search (one evaluation per step, which is how torchstyle uses L-BFGS), but keeps the pairs as rows
of one matrix and applies the inverse Hessian in its compact form (Byrd, Nocedal and
Schnabel 1994; Nocedal and Wright eq. 7.24): two passes over the history (as many as the
two-loop recursion) and two ``m x m`` triangular solves per step, whatever ``m`` is, and no host
synchronization. Its products are plain float32 matrix products: keep TF32 off while it steps.
With ``capturable=True`` its tensors keep their shapes from the first step on and change in
place, so a whole step, the closure's evaluation included, can be captured into one CUDA graph and
replayed (:func:`torchstyle.transfer.optimize` does so on CUDA); otherwise the history's memory
and work grow with the pairs stored, as ``torch.optim.LBFGS``'s do.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

# torch.optim.LBFGS's defaults and its curvature test (a pair is kept when s.y > 1e-10)
TOLERANCE_GRAD = 1e-7
TOLERANCE_CHANGE = 1e-9
CURVATURE_MIN = 1e-10


class SyncFreeLBFGS(torch.optim.Optimizer):
    """L-BFGS over one tensor, one closure evaluation per :meth:`step`, with no host syncs.

    The history is a ring of ``history_size`` slots; each slot's age orders the pairs for the
    compact representation, and a rejected pair (``s.y <= 1e-10``) leaves the ring as it was.
    The small ``m x m`` algebra runs in float64 on the parameter's device. ``capturable``: every
    step reads and writes the same memory, with all ``m`` slots in place from the first step.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, history_size: int = 100,
                 tolerance_grad: float = TOLERANCE_GRAD, tolerance_change: float = TOLERANCE_CHANGE,
                 capturable: bool = False) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        super().__init__(params, dict(lr=lr, history_size=history_size, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, capturable=capturable))
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("SyncFreeLBFGS optimizes exactly one tensor")

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Evaluate ``closure`` (which fills the gradient), then move along the L-BFGS direction.

        The state changes in place; with ``capturable`` no tensor changes shape either, so that
        a step (with its closure) can be captured into a CUDA graph and replayed.
        """
        group = self.param_groups[0]
        (param,) = group["params"]
        with torch.enable_grad():
            loss = closure()
        grad = param.grad.reshape(-1)
        state = self.state[param]
        if not state:
            self._init_state(state, grad, group["history_size"], group["capturable"])
        m = group["history_size"]
        rows = 2 * m if group["capturable"] else 2 * min(state["steps"] + 1, m)  # may hold a pair
        converged = grad.abs().max() <= group["tolerance_grad"]  # torch's LBFGS then leaves all as is
        projected = self._remember(state, grad, ~converged, rows)
        direction = -self._inverse_hessian_times(state, grad, projected, rows)  # -grad while no pair is kept
        first = state["count"] == 0  # torch's LBFGS scales its first step by min(1, 1 / |g|_1)
        size = torch.where(first, (1.0 / grad.abs().sum().double()).clamp(max=1.0), 1.0) * group["lr"]
        stalled = grad.dot(direction) > -group["tolerance_change"]  # not a descent direction: stay
        size = torch.where(converged | stalled, torch.zeros_like(size), size)
        move = direction * size.to(direction.dtype)
        param.add_(move.view_as(param))
        state["prev_step"].copy_(torch.where(converged, state["prev_step"], move))
        state["prev_grad"].copy_(torch.where(converged, state["prev_grad"], grad))
        state["count"].add_(1)
        state["steps"] += 1  # the host's count, for the rows in use; the device's is "count"
        return loss

    @staticmethod
    def _init_state(state: dict, grad: torch.Tensor, m: int, capturable: bool) -> None:
        device = grad.device
        state.update(
            steps=0,
            count=torch.zeros((), dtype=torch.int64, device=device),  # steps taken
            # rows 2j and 2j + 1 hold slot j's s and y: all m slots at once when capturable, else
            # grown by doubling, so that memory follows the history as torch's LBFGS's does
            pairs=torch.zeros(2 * (m if capturable else min(m, 4)), grad.numel(), dtype=grad.dtype, device=device),
            products=torch.zeros(2 * m, 2 * m, dtype=torch.float64, device=device),  # between rows of pairs
            ages=torch.full((m,), -1, dtype=torch.int64, device=device),  # -1: an empty slot
            slot=torch.zeros(1, dtype=torch.int64, device=device),  # where the next pair goes
            gamma=torch.ones((), dtype=torch.float64, device=device),  # H0 = gamma * I
            prev_grad=grad.clone(),
            prev_step=torch.zeros_like(grad),  # s = 0 on the first step: no pair is kept
        )

    @staticmethod
    def _remember(state: dict, grad: torch.Tensor, allowed: torch.Tensor, rows_used: int) -> torch.Tensor:
        """Store the pair ``(s, y)`` of the last step in the oldest slot when its curvature is
        positive (``s.y > 1e-10``), keeping the products between the first ``rows_used`` stored
        vectors current; returns each one's product with ``grad``, found in the same pass."""
        if state["pairs"].shape[0] < rows_used:
            grown = state["pairs"].new_zeros(min(2 * state["pairs"].shape[0], 2 * state["ages"].numel()),
                                             grad.numel())
            grown[: state["pairs"].shape[0]] = state["pairs"]
            state["pairs"] = grown
        pairs, products, ages, slot = state["pairs"][:rows_used], state["products"], state["ages"], state["slot"]
        s, y = state["prev_step"], grad - state["prev_grad"]
        sy = s.double().dot(y.double())
        keep = allowed & (sy > CURVATURE_MIN)
        rows = torch.cat([2 * slot, 2 * slot + 1])
        pairs.index_copy_(0, rows, torch.where(keep, torch.stack([s, y]), pairs.index_select(0, rows)))
        ages.index_copy_(0, slot, torch.where(keep, state["count"], ages.index_select(0, slot)))
        # one pass over the history (torchstyle keeps TF32 to the evaluation, never here)
        fresh = (pairs @ torch.cat([pairs.index_select(0, rows), grad[None]]).T).double()
        products[:rows_used].index_copy_(1, rows, fresh[:, :2])
        products[:, :rows_used].index_copy_(0, rows, fresh[:, :2].T)
        state["gamma"].copy_(torch.where(keep, sy / y.double().dot(y.double()), state["gamma"]))
        slot.copy_(torch.where(keep, (slot + 1) % ages.numel(), slot))
        if rows_used == products.shape[0]:
            return fresh[:, 2]
        projected = torch.zeros(products.shape[0], dtype=torch.float64, device=grad.device)
        projected[:rows_used] = fresh[:, 2]
        return projected

    @staticmethod
    def _inverse_hessian_times(state: dict, grad: torch.Tensor, projected: torch.Tensor,
                               rows_used: int) -> torch.Tensor:
        """``H g`` in compact form: ``gamma g + S R^-T ((D + gamma Y^T Y) u - gamma Y^T g) - gamma Y u``
        with ``u = R^-1 S^T g``, ``R`` the upper triangle of ``S^T Y`` in age order, ``D`` its
        diagonal; ``projected`` holds ``s_j . g`` and ``y_j . g`` slot by slot."""
        products, ages, gamma = state["products"], state["ages"], state["gamma"]
        m = ages.numel()
        order = torch.argsort(ages)  # empty slots first, then oldest to newest
        used = (ages.index_select(0, order) >= 0).double()
        both = used[:, None] * used[None, :]
        sy = products[0::2, 1::2].index_select(0, order).index_select(1, order) * both  # s_i . y_j
        yy = products[1::2, 1::2].index_select(0, order).index_select(1, order) * both
        eye = torch.eye(m, dtype=torch.float64, device=grad.device)
        upper = torch.triu(sy) + eye * (1.0 - used)  # an empty slot is an identity row: it stays 0
        a = projected[0::2].index_select(0, order) * used
        b = projected[1::2].index_select(0, order) * used
        u = torch.linalg.solve_triangular(upper, a[:, None], upper=True)[:, 0]
        rhs = torch.diagonal(sy) * u + gamma * (yy @ u) - gamma * b
        top = torch.linalg.solve_triangular(upper.T, rhs[:, None], upper=False)[:, 0]
        coefficients = torch.zeros(2 * m, dtype=torch.float64, device=grad.device)
        coefficients.index_copy_(0, 2 * order, top)
        coefficients.index_copy_(0, 2 * order + 1, -gamma * u)
        return torch.addmv(grad * gamma.to(grad.dtype), state["pairs"][:rows_used].T,
                           coefficients[:rows_used].to(grad.dtype))


__all__ = ["SyncFreeLBFGS"]
