"""Optimal transport between distributions: a log-domain Sinkhorn and SinKD's batch-wise loss.

SinKD (Cui et al., COLING 2024; github.com/2018cx/SinKD, `loss.py::Sinkhorn`) compares the
student's and the teacher's softened distributions not sample by sample but as two *sets*: the
B student distributions are transported onto the B teacher distributions, with the cost of
moving s_i onto t_j their L1 distance. The released code scales the kernel exp(-C/eps) and
normalises rows then columns in probability space, which underflows for small eps; here the same
sweeps run on log P (a logsumexp per row and per column), which gives the same plan wherever the
original does not underflow (tested against POT, `ot.sinkhorn`, in tests/test_transport.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sinkhorn_plan(cost: torch.Tensor, eps: float = 0.1, n_iters: int = 20, a: torch.Tensor | None = None,
                  b: torch.Tensor | None = None) -> torch.Tensor:
    """Entropic OT plan by Sinkhorn's matrix scaling, in the log domain.

    cost (n, m); eps > 0 the entropic regularisation (the kernel is exp(-cost / eps)); n_iters
    sweeps, each a row scaling (rows sum to a) then a column scaling (columns sum to b), as in the
    official SinKD code, so after the last sweep the columns match b exactly and the rows
    approximately. a (n,), b (m,): marginals, default all ones (SinKD's P/P1, P/1ᵀP: total mass n
    for a square cost); pass a = 1/n, b = 1/m for POT's convention. Differentiable: the gradient
    flows through every sweep (SinKD detaches nothing). Returns P (n, m), float32.
    """
    if cost.dim() != 2:
        raise ValueError(f"sinkhorn_plan: cost must be (n, m), got shape {tuple(cost.shape)}")
    if eps <= 0 or n_iters < 1:
        raise ValueError(f"sinkhorn_plan: need eps > 0 and n_iters >= 1, got eps={eps}, n_iters={n_iters}")
    cost = cost.float()
    n, m = cost.shape
    log_a = torch.zeros(n, device=cost.device) if a is None else a.float().log()
    log_b = torch.zeros(m, device=cost.device) if b is None else b.float().log()
    log_p = -cost / eps
    for _ in range(n_iters):
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True) + log_a[:, None]
        log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True) + log_b[None, :]
    return log_p.exp()


def sinkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
               eps: float = 0.1, n_iters: int = 20) -> torch.Tensor:
    """SinKD's batch-wise Sinkhorn distance <P, C> (Cui et al., Sec. 3; the official `Sinkhorn` loss).

    student_logits, teacher_logits: (B, C) — the samples of the batch (for LMs: the selected token
    positions, softmax over the vocabulary). s_i = softmax(z_i^S / T), t_j = softmax(z_j^T / T);
    C_ij = ||s_i - t_j||_1 (torch.cdist, p = 1); P = sinkhorn_plan(C, eps, n_iters) with unit row
    and column sums; the loss is sum_ij P_ij C_ij (no mean: the official code's scale; its 0.001 or
    0.0008 factor is a method weight). Gradients flow into the student only (the teacher's logits
    are detached) and through the plan. Permutation invariance: shuffling the teacher's rows leaves
    the loss unchanged — on its own it does not pair student i with teacher i. Scalar, float32.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"sinkd_loss: need (B, C) logits of equal shape, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    s = F.softmax(student_logits.float() / temperature, dim=-1)
    t = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    cost = torch.cdist(s, t, p=1)
    return (sinkhorn_plan(cost, eps, n_iters) * cost).sum()


__all__ = ["sinkhorn_plan", "sinkd_loss"]
