"""TAID: Temporally Adaptive Interpolated Distillation (Shing et al., ICLR 2025).

The student is trained toward an *intermediate* distribution that moves from its own
(detached) prediction to the teacher's as training goes on:

    p_t = softmax((1 - t) * sg[z_S] + t * z_T)                 (logit-space interpolation)
    J   = - sum_v p_t(v) log q_S(v), averaged over response tokens

and t rises once per step by the paper's adaptive rule (official code,
SakanaAI/TAID ``src/distil_losses/taid.py``, ``TAID.update_t``):

    delta_n = (J_{n-1} - J_n) / (J_{n-1} + eps)       relative loss decrease
    m_n     = beta m_{n-1} + (1 - beta) delta_n        momentum
    t_{n+1} = min(t_end, max(t_start + (t_end - t_start) n / N,  t_n + alpha sigmoid(m_n) (1 - t_n)))

The max() with the linear schedule is a floor, so t never decreases; the very first
call only records J_0. ``disable_adaptive`` (the repo's ``--taid_disable_adaptive``)
keeps the linear floor alone.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from kdlib.lm.base import TokenMethod

__all__ = ["taid_target", "taid_loss", "TAIDSchedule", "TAID"]

EPS = 1e-15  # the official code's epsilon in the relative change


def taid_target(student_logits, teacher_logits, t):
    """TAID's intermediate target p_t = softmax((1 - t) sg[z_S] + t z_T) (Shing et al. 2025).

    student_logits, teacher_logits: (..., V); t: a float or 0-d tensor in [0, 1].
    The student is detached: the target carries no gradient. Returns probabilities (..., V), float32.
    """
    z = (1 - t) * student_logits.detach().float() + t * teacher_logits.detach().float()
    return F.softmax(z, dim=-1)


def taid_loss(student_logits, teacher_logits, t, mask=None):
    """TAID's objective: cross-entropy from the intermediate target p_t to the student q_S.

    J = - sum_v p_t(v) log q_S(v), summed over the vocabulary and averaged over the positions
    where mask is true (the official ``forward_kl`` with ``teacher_probs=p_t``; it equals
    KL(p_t || q_S) plus the entropy of p_t, a constant for the gradient).
    student_logits, teacher_logits: (N, T, V) or (N, V); mask: None or (N, T) / (N,) bool.
    Returns a scalar. At t = 1 it is the cross-entropy to the teacher (forward KL + H(p_T)).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"taid_loss: student_logits {tuple(student_logits.shape)} and teacher_logits "
                         f"{tuple(teacher_logits.shape)} differ")
    p_t = taid_target(student_logits, teacher_logits, t)
    per_position = -(p_t * F.log_softmax(student_logits.float(), dim=-1)).sum(-1)
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.device).float()
    return (per_position * mask).sum() / mask.sum().clamp_min(1.0)


class TAIDSchedule:
    """The stateful schedule of t: the official ``TAID.update_t``, once per training step.

    t_start, t_end: the interpolation's start and end (paper: 0.4 or 0.2, and 1.0);
    alpha: the adaptive step size (5e-4); beta: the momentum (0.99);
    disable_adaptive: True keeps only the linear floor t_start + (t_end - t_start) n / N.
    """

    def __init__(self, t_start=0.4, t_end=1.0, alpha=5e-4, beta=0.99, disable_adaptive=False):
        if not 0.0 <= t_start < 1.0:
            raise ValueError(f"TAIDSchedule: t_start={t_start} must be in [0, 1)")
        if not 0.0 < t_end <= 1.0 or t_end < t_start:
            raise ValueError(f"TAIDSchedule: t_end={t_end} must be in (0, 1] and >= t_start")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"TAIDSchedule: alpha={alpha} must be in [0, 1]")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"TAIDSchedule: beta={beta} must be in [0, 1)")
        self.t_start, self.t_end, self.alpha, self.beta = t_start, t_end, alpha, beta
        self.disable_adaptive = disable_adaptive
        self.t, self.prev_loss, self.momentum = float(t_start), math.inf, 0.0

    def update(self, loss, step, total_steps):
        """Record this step's loss J_n (a float) at optimizer step ``step`` of ``total_steps``; returns t.

        The new t is the one the *next* step's target uses (as in the official code, where
        ``update_t`` runs after the loss is computed)."""
        loss = float(loss)
        if math.isinf(self.prev_loss):  # the first call only remembers J_0
            self.prev_loss = loss
            return self.t
        relative_change = (self.prev_loss - loss) / (self.prev_loss + EPS)
        self.momentum = self.beta * self.momentum + (1 - self.beta) * relative_change
        floor = self.t_start + (self.t_end - self.t_start) * step / total_steps
        if self.disable_adaptive:
            self.t = floor
        else:
            adaptive = self.t + self.alpha * (1 / (1 + math.exp(-self.momentum))) * (1 - self.t)
            self.t = min(self.t_end, max(floor, adaptive))
        self.prev_loss = loss
        return self.t


class TAID(TokenMethod):
    """TAID distillation of a causal LM on the dataset's sequences (supervised, teacher-forced).

    n_vocab: the oracle's content tokens; total_steps: N of the linear floor (the run's updates).
    Reads ``self.step`` (set by ``kdlib.train.train``) and updates t once per step after the loss.
    ``self.t_history``: the t each step's target used (the trajectory of t).
    No cross-entropy on the labels: the official runs use distil_ratio = 1.0.
    """

    def __init__(self, n_vocab, total_steps, t_start=0.4, t_end=1.0, alpha=5e-4, beta=0.99,
                 disable_adaptive=False):
        super().__init__()
        if total_steps < 1:
            raise ValueError(f"TAID: total_steps={total_steps} must be >= 1")
        self.n_vocab, self.total_steps = n_vocab, int(total_steps)
        self.schedule = TAIDSchedule(t_start, t_end, alpha, beta, disable_adaptive)
        self.t_history = []

    def forward(self, student, teacher, batch):
        terms = super().forward(student, teacher, batch)  # the dataset's tokens (TokenMethod.prefixes)
        self.t_history.append(self.schedule.t)
        self.schedule.update(terms["taid"].detach(), self.step, self.total_steps)
        return terms

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        return {"taid": taid_loss(student_logits, teacher_logits, self.schedule.t, mask)}
