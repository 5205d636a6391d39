"""Divergences between teacher and student distributions, and cross-entropies (the general family)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _log_probs(logits, temperature):
    return F.log_softmax(logits.float() / temperature, dim=-1)


def _reduce(per_position, mask=None):
    """Mean over the sample axis: per-sample values (..., N) -> (...).

    Only the last axis is reduced, so a loss of (N, C) logits is a scalar and the same loss of
    K stacked seeds' (K, N, C) logits is (K,), each seed's own value (`kdlib.batched`). With a
    mask, the values are per token, (..., N, T) with a (..., N, T) mask, and the mean is over the
    tokens where it is true: the last two axes."""
    if mask is None:
        return per_position.mean(-1)
    mask = mask.to(per_position.dtype)
    dims = (-2, -1) if per_position.ndim >= 2 else (-1,)
    return (per_position * mask).sum(dims) / mask.sum(dims).clamp_min(1.0)


def _kl(log_p, log_q):
    """Per-position KL(p || q) from log-probabilities, (..., C) -> (...)."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def entropy(logits, temperature=1.0):
    """Shannon entropy (nats) of softmax(z / T) per sample: (..., C) -> (...).

    0 for a one-hot prediction, log C for a uniform one: how sharp a prediction, or how smooth a
    target, is (Mixup-KD's target smoothness, PESF's sharpness, BD-KD's entropy gap)."""
    log_p = _log_probs(logits, temperature)
    return -(log_p.exp() * log_p).sum(-1)


def cross_entropy(logits, target):
    """Label cross-entropy, mean over samples: the value of F.cross_entropy(logits, target).

    logits (N, C), target (N,) class indices; returns a scalar ((K, N, C) and (K, N): (K,)).
    Written as the mean of the per-sample losses -log p(y) rather than F.cross_entropy's fused
    mean (a cascade sum inside nll_loss), so that the seeds of a batched run (kdlib.batched) log
    exactly the value the one-seed loop logs. The gradient is F.cross_entropy's bit for bit
    (-1/N at the target before the same log-softmax backward), so training is unchanged.
    """
    return per_sample_cross_entropy(logits, target).mean(-1)


def per_sample_cross_entropy(logits, target):
    """-log p(y) of each sample: (..., N, C) logits, (..., N) labels -> (..., N).

    The values of ``F.cross_entropy(logits, target, reduction="none")``, for any leading dims."""
    log_p = F.log_softmax(logits, dim=-1)
    return -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def kd_loss(student_logits, teacher_logits, temperature, mask=None):
    """Hinton, Vinyals & Dean 2015, Eq. 2 (soft-target term): T^2 * KL(p_t^T || p_s^T).

    student_logits, teacher_logits: (N, C) or (N, T, V); mask: None or (N, T) bool.
    Returns a scalar (batchmean). The T^2 factor keeps the gradient scale of the
    soft term comparable across temperatures (paper, Sec. 2).
    """
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    return temperature**2 * _reduce(_kl(log_p_t, log_p_s), mask)


def reverse_kl(student_logits, teacher_logits, temperature=1.0, mask=None):
    """Reverse KL, KL(p_s || p_t): the mode-seeking divergence of MiniLLM (Gu et al. 2024, Eq. 1).

    Shapes as ``kd_loss``. No T^2 factor. Returns a scalar (batchmean).
    """
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    return _reduce(_kl(log_p_s, log_p_t), mask)


def generalized_jsd(student_logits, teacher_logits, beta=0.5, temperature=1.0, mask=None):
    """Generalized Jensen-Shannon divergence of GKD (Agarwal et al. 2024, Eq. 3).

    JSD_beta = beta * KL(p_t || m) + (1 - beta) * KL(p_s || m),  m = beta p_t + (1 - beta) p_s.

    beta = 0 returns forward KL(p_t || p_s) and beta = 1 reverse KL(p_s || p_t)
    exactly (as TRL's GKDTrainer does); in between it is GKD's unnormalised JSD,
    which tends to beta * FKL as beta -> 0 and to (1 - beta) * RKL as beta -> 1,
    and is symmetric in (p_s, p_t) at beta = 0.5. Shapes as ``kd_loss``.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"generalized_jsd: beta must be in [0, 1], got {beta}")
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    if beta == 0.0:
        return _reduce(_kl(log_p_t, log_p_s), mask)
    if beta == 1.0:
        return _reduce(_kl(log_p_s, log_p_t), mask)
    log_m = torch.logsumexp(
        torch.stack([log_p_t + math.log(beta), log_p_s + math.log(1 - beta)]), dim=0
    )
    jsd = beta * _kl(log_p_t, log_m) + (1 - beta) * _kl(log_p_s, log_m)
    return _reduce(jsd, mask)


def tvd(student_logits, teacher_logits, temperature=1.0, mask=None):
    """Total variation distance, 0.5 * sum_c |p_t - p_s| (DistiLLM / DistillKit baseline).

    Bounded in [0, 1]. Shapes as ``kd_loss``. Returns a scalar (batchmean).
    """
    p_s = _log_probs(student_logits, temperature).exp()
    p_t = _log_probs(teacher_logits, temperature).exp()
    return _reduce(0.5 * (p_t - p_s).abs().sum(-1), mask)


def _skew_log_mix(log_p, log_q, alpha):
    """log(alpha * p + (1 - alpha) * q), computed in log space."""
    if alpha == 0.0:
        return log_q
    return torch.logsumexp(torch.stack([log_p + math.log(alpha), log_q + math.log(1 - alpha)]), dim=0)


def skew_forward_kl(student_logits, teacher_logits, alpha=0.1, temperature=1.0, mask=None):
    """DistiLLM skew forward KL (Ko et al. 2024, Eq. 4): KL(p_t || alpha p_t + (1 - alpha) p_s).

    alpha = 0 is forward KL; the mixture keeps the loss finite where p_s -> 0,
    which is the paper's stability argument. Shapes as ``kd_loss``.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"skew_forward_kl: alpha must be in [0, 1), got {alpha}")
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    return _reduce(_kl(log_p_t, _skew_log_mix(log_p_t, log_p_s, alpha)), mask)


def skew_reverse_kl(student_logits, teacher_logits, alpha=0.1, temperature=1.0, mask=None):
    """DistiLLM skew reverse KL (Ko et al. 2024, Eq. 5): KL(p_s || (1 - alpha) p_t + alpha p_s).

    alpha = 0 is reverse KL. Shapes as ``kd_loss``.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"skew_reverse_kl: alpha must be in [0, 1), got {alpha}")
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    return _reduce(_kl(log_p_s, _skew_log_mix(log_p_s, log_p_t, alpha)), mask)


def logit_mse(student_logits, teacher_logits, mask=None):
    """Logit matching (Ba & Caruana 2014): 0.5 * sum_c (z_s - z_t)^2, mean over samples.

    Hinton et al. 2015 (Sec. 2.1) show KD tends to this as T -> infinity when the
    logits have zero mean per sample. Shapes as ``kd_loss``.
    """
    diff = student_logits.float() - teacher_logits.float()
    return _reduce(0.5 * diff.pow(2).sum(-1), mask)


def soft_cross_entropy(student_logits, target_probs, mask=None):
    """Cross-entropy to a soft target, -sum_c q_c log p_s,c (BAN's and LELP's target loss).

    target_probs: same shape as the logits, rows summing to one. Returns a scalar.
    """
    log_p_s = F.log_softmax(student_logits.float(), dim=-1)
    return _reduce(-(target_probs.float() * log_p_s).sum(-1), mask)


# the public losses of this family, re-exported by kdlib.losses
__all__ = [name for name, obj in list(globals().items())
           if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == __name__]
