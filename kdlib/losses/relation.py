"""Relation losses: what a student should copy about the *geometry* of the teacher's embeddings.

(The token-level relation graphs of TRG, Zhang, Liu & He 2023, are at the end of this module.)

Relational Knowledge Distillation (Park, Kim, Lu & Cho, CVPR 2019): the distance-wise (RKD-D,
Eq. 4-5) and angle-wise (RKD-A, Eq. 6-7) losses. Embeddings are ``(N, D)``; the student's and the
teacher's widths may differ (only relations inside one batch are compared). Both return a scalar:
the smooth-L1 (Huber, delta = 1) mean over the ordered pairs (RKD-D) or the triplets (RKD-A), as
the official code (github.com/lenscloth/RKD, metric/loss.py) reduces it. The teacher's side is
computed without gradient: relations are targets.
"""

from __future__ import annotations

import math

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



# ------------------------------------------------------------------ token-level relation graphs
# Knowledge Distillation via Token-level Relationship Graph, TRG (Zhang, Liu & He, arXiv 2306.12442,
# 2023). No official code; the paper's method section could not be read here, so these follow the
# book's spec (a second-hand summary) and say where they are our reading. Tokens are (N, P, D):
# N examples of P tokens each; the graphs' nodes are the N * P tokens of a batch.


def _check_tokens(student, teacher, name, same_width=False):
    if student.dim() != 3 or teacher.dim() != 3:
        raise ValueError(f"{name}: tokens must be (N, P, D), got student {tuple(student.shape)}, teacher {tuple(teacher.shape)}")
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(f"{name}: student and teacher must have the same (N, P), got {tuple(student.shape[:2])} vs {tuple(teacher.shape[:2])}")
    if same_width and student.shape[2] != teacher.shape[2]:
        raise ValueError(f"{name}: student and teacher widths differ ({student.shape[2]} vs {teacher.shape[2]}); project first")


def knn_graph(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """The k nearest neighbours (Euclidean, self excluded) of each of M nodes: (M, D) -> (M, k) indices."""
    if tokens.dim() != 2:
        raise ValueError(f"knn_graph: tokens must be (M, D), got {tuple(tokens.shape)}")
    if not 1 <= k < len(tokens):
        raise ValueError(f"knn_graph: k must be in [1, M), got k={k} with M={len(tokens)}")
    d2 = torch.cdist(tokens.float(), tokens.float()).pow(2)
    d2.fill_diagonal_(float("inf"))
    return d2.topk(k, dim=1, largest=False).indices


def _neighbour_log_probs(nodes, neighbours, sigma):
    """log p_i(j) over i's neighbours j: softmax_j of -||x_i - x_j||^2 / (2 sigma), i.e. A_ij normalised."""
    d2 = (nodes[:, None, :] - nodes[neighbours]).pow(2).sum(-1)  # (M, k)
    if sigma is None:  # a scale-free bandwidth: the graph's mean squared edge length (no gradient through it)
        sigma = d2.detach().mean().clamp_min(1e-12)
    return F.log_softmax(-d2 / (2 * sigma), dim=1)


def token_local_loss(student: torch.Tensor, teacher: torch.Tensor, k: int = 8, sigma=None) -> torch.Tensor:
    """TRG's local term: the student's token kNN graph should weigh neighbours as the teacher's does.

    All N * P tokens of the batch are the nodes. The teacher's kNN graph fixes each node's k
    neighbours N_k(i); on those edges both models weigh neighbour j by the heat kernel
    A_ij = exp(-||x_i - x_j||^2 / (2 sigma)), normalised over j in N_k(i) to a distribution p_i.
    Loss = mean_i KL(p^T_i || p^S_i) (forward KL, the book's convention; the spec writes the
    softmax of A over j; our reading: normalising A itself, on the teacher's edges, so that
    both distributions live on the same support). sigma=None takes each graph's own mean squared
    edge length as its bandwidth, so the loss is invariant to scaling, rotating and translating
    either side's tokens (and to permuting the tokens of both together); a float fixes sigma.
    Shapes: student (N, P, Ds), teacher (N, P, Dt) (widths may differ). Reduction: KL summed over
    the k neighbours, averaged over the N * P nodes. >= 0; 0 when the student's tokens equal the
    teacher's. The teacher's side carries no gradient.
    """
    _check_tokens(student, teacher, "token_local_loss")
    if sigma is not None and sigma <= 0:
        raise ValueError(f"token_local_loss: sigma must be > 0 (or None), got {sigma}")
    s, t = student.float().flatten(0, 1), teacher.float().flatten(0, 1).detach()
    neighbours = knn_graph(t, k)
    log_p_t = _neighbour_log_probs(t, neighbours, sigma)
    log_p_s = _neighbour_log_probs(s, neighbours, sigma)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean()


def token_infonce_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """TRG's global term: token-wise InfoNCE across the whole batch (spec; the paper's form unverified).

    Every student token z^S_m (of the N * P in the batch) must pick out its own teacher token z^T_m
    among all N * P teacher tokens: the positive is the same token of the same example, every other
    token (same example or not) is a negative. Both sides are L2-normalised (cosine similarity):
        L = -mean_m log( exp(<z^S_m, z^T_m> / tau) / sum_n exp(<z^S_m, z^T_n> / tau) ).
    Shapes: student (N, P, D), teacher (N, P, D) (the same width: project both first). tau > 0 is
    the temperature (TRG lowers it during training: `global_temperature`). Reduction: mean over the
    N * P anchors. Gradients reach both arguments (the teacher's projection head is trained too);
    the frozen teacher's own tokens must be detached by the caller.
    """
    _check_tokens(student, teacher, "token_infonce_loss", same_width=True)
    if tau <= 0:
        raise ValueError(f"token_infonce_loss: tau must be > 0, got {tau}")
    s = F.normalize(student.float().flatten(0, 1), dim=1)
    t = F.normalize(teacher.float().flatten(0, 1), dim=1)
    logits = s @ t.t() / tau
    return F.cross_entropy(logits, torch.arange(len(s), device=s.device))


def global_temperature(epoch: int, epochs: int, tau_start: float = 0.5, tau_end: float = 0.1) -> float:
    """The decreasing InfoNCE temperature of TRG's global term: cosine from tau_start (epoch 0) to tau_end (last epoch).

    The spec says only that tau_g decreases during training; the cosine shape and the end points are ours.
    """
    if epochs < 1 or not 0 <= epoch < max(epochs, 1):
        raise ValueError(f"global_temperature: need 0 <= epoch < epochs, got epoch={epoch}, epochs={epochs}")
    if not tau_start >= tau_end > 0:
        raise ValueError(f"global_temperature: need tau_start >= tau_end > 0, got {tau_start}, {tau_end}")
    progress = epoch / (epochs - 1) if epochs > 1 else 1.0
    return tau_end + 0.5 * (tau_start - tau_end) * (1 + math.cos(math.pi * progress))


def token_context(tokens: torch.Tensor) -> torch.Tensor:
    """CS = softmax(F F^T / sqrt(D)) within each example: (N, P, D) -> (N, P, P), rows sum to 1."""
    f = tokens.float()
    return torch.softmax(f @ f.transpose(1, 2) / math.sqrt(f.shape[-1]), dim=-1)


def token_inner_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """TRG's inner-instance ("contextual") term: MSE between the student's and the teacher's CS matrices.

    CS = softmax(F F^T / sqrt(D)) over the P tokens of one example (`token_context`), computed
    with each side's own width D. Shapes: student (N, P, Ds), teacher (N, P, Dt). Reduction: the
    squared error summed over each row's P entries, averaged over the N * P rows (our choice:
    a per-token quantity, as `batchmean` is per sample). >= 0, 0 when the tokens are equal;
    the teacher's side carries no gradient.
    """
    _check_tokens(student, teacher, "token_inner_loss")
    with torch.no_grad():
        cs_t = token_context(teacher)
    return (token_context(student) - cs_t).pow(2).sum(-1).mean()


# the public losses of this family, re-exported by kdlib.losses
__all__ = [name for name, obj in list(globals().items())
           if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == __name__]
