"""Relation losses: what a student should copy about the *geometry* of the teacher's embeddings.

Relational Knowledge Distillation (Park, Kim, Lu & Cho, CVPR 2019): the distance-wise (RKD-D,
Eq. 4-5) and angle-wise (RKD-A, Eq. 6-7) losses. Embeddings are ``(N, D)``; the student's and the
teacher's widths may differ (only relations inside one batch are compared). Both return a scalar:
the smooth-L1 (Huber, delta = 1) mean over the ordered pairs (RKD-D) or the triplets (RKD-A), as
the official code (github.com/lenscloth/RKD, metric/loss.py) reduces it. The teacher's side is
computed without gradient: relations are targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(student, teacher, name):
    if student.dim() != 2 or teacher.dim() != 2:
        raise ValueError(f"{name}: embeddings must be (N, D), got student {tuple(student.shape)}, teacher {tuple(teacher.shape)}")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{name}: student and teacher batch sizes differ ({student.shape[0]} vs {teacher.shape[0]})")
    if student.shape[0] < 3:
        raise ValueError(f"{name}: needs a batch of at least 3 embeddings, got {student.shape[0]}")


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, D) -> (N, N) Euclidean distances, zero diagonal (clamped before the sqrt: finite gradients)."""
    sq = e.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(eps)
    d = d2.sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def distance_potential(e: torch.Tensor) -> torch.Tensor:
    """psi_D (Eq. 4): pairwise distances divided by their mean over the N(N-1) off-diagonal pairs (N, N)."""
    d = pairwise_distances(e.float())
    mu = d[d > 0].mean()
    return d / mu


def angle_potential(e: torch.Tensor) -> torch.Tensor:
    """psi_A (Eq. 6): cos of the angle at t_j between t_i and t_k, <e_ij, e_kj>, for all (i, j, k) -> (N, N, N)."""
    e = e.float()
    diff = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)  # diff[j, i] = unit(t_i - t_j)
    return torch.bmm(diff, diff.transpose(1, 2))  # [j, i, k] = <e_ij, e_kj>


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-D (Park et al. 2019, Eq. 5): sum_{i,j} l_delta(psi_D(t_i, t_j), psi_D(s_i, s_j)), averaged.

    psi_D(t_i, t_j) = ||t_i - t_j|| / mu with mu the mean distance over the batch's pairs (Eq. 4), so
    the loss is invariant to scaling, rotating and translating either embedding. l_delta is the
    Huber loss with delta = 1 (Eq. 3; `smooth_l1_loss`). Shapes: student (N, Ds), teacher (N, Dt),
    N >= 3. Reduction: mean over the N^2 entries of the (N, N) relation (the official code's).
    """
    _check(student, teacher, "rkd_distance_loss")
    with torch.no_grad():
        t = distance_potential(teacher)
    return F.smooth_l1_loss(distance_potential(student), t, reduction="mean")


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor, max_batch: int = 0) -> torch.Tensor:
    """RKD-A (Park et al. 2019, Eq. 7): sum_{i,j,k} l_delta(psi_A(t_i,t_j,t_k), psi_A(s_i,s_j,s_k)), averaged.

    psi_A = cos of the angle at t_j (Eq. 6): invariant to scale, rotation and translation by
    construction. Memory is O(N^2 D + N^3): `max_batch` > 0 keeps the first `max_batch` rows only
    (a capped batch; the sample is already random). Shapes: student (N, Ds), teacher (N, Dt),
    N >= 3. Reduction: mean over the N^3 triplets (the official code's).
    """
    _check(student, teacher, "rkd_angle_loss")
    if max_batch < 0:
        raise ValueError(f"rkd_angle_loss: max_batch must be >= 0, got {max_batch}")
    if max_batch and len(student) > max_batch:
        if max_batch < 3:
            raise ValueError(f"rkd_angle_loss: max_batch must be >= 3, got {max_batch}")
        student, teacher = student[:max_batch], teacher[:max_batch]
    with torch.no_grad():
        t = angle_potential(teacher)
    return F.smooth_l1_loss(angle_potential(student), t, reduction="mean")


# the public losses of this family, re-exported by kdlib.losses
__all__ = [name for name, obj in list(globals().items())
           if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == __name__]
