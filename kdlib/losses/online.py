"""Online (mutual) distillation losses: networks trained together, each the other's soft target.

DML (Zhang et al. 2018) distils with forward KL in both directions; BD-KD (Amara et al. 2022)
mixes forward and reverse KL per sample, by the gap between the two networks' entropies.
"""

from __future__ import annotations

import math

import torch

from .divergences import _kl, _log_probs, _reduce, entropy


def mutual_kl(logits, peer_logits, temperature=1.0, t_squared=True):
    """Deep mutual learning's term of one network towards one peer (Zhang et al. 2018, Eq. 10, one j):

        s * KL(sg[p_peer^T] || p^T),   s = T^2 if t_squared else 1

    batchmean. The peer is the target and is detached here (no gradient into it). t_squared=True
    is the book's KD convention (the value of `kd_loss(logits, peer_logits.detach(), T)`); False is
    the online papers' plain KL (the value of `bdkd_loss(logits, peer_logits.detach(), 0, T)`); the
    two agree at DML's T = 1. (N, C) twice -> scalar ((K, N, C): (K,)).
    """
    log_p = _log_probs(logits, temperature)
    log_p_peer = _log_probs(peer_logits.detach(), temperature)
    scale = temperature**2 if t_squared else 1.0
    return scale * _reduce(_kl(log_p_peer, log_p))


def bdkd_loss(student_logits, teacher_logits, reverse_weight, temperature=1.0):
    """BD-KD's balanced divergence (Amara et al. 2022, Sec. 3, our reading; see notebooks/bdkd.md):

        (1 / N) sum_i [ (1 - w_i) KL(p_t,i || p_s,i) + w_i KL(p_s,i || p_t,i) ]

    a per-sample convex mix of forward KL (mass-covering) and reverse KL (mode-seeking).
    student_logits, teacher_logits: (N, C); the caller detaches whichever side is the target.
    reverse_weight: a number or an (N,) tensor w in [0, 1]; w = 0 is forward KL (DML's term,
    `kd_loss` at T = 1), w = 1 is reverse KL (`reverse_kl`), w = 0.5 the fixed 50/50 mix.
    No T^2 factor (the online methods run at T = 1). Returns a scalar (batchmean).
    """
    w = torch.as_tensor(reverse_weight, dtype=torch.float32, device=student_logits.device)
    if w.dim() > 1 or (w.dim() == 1 and w.shape[0] != student_logits.shape[0]):
        raise ValueError(f"bdkd_loss: reverse_weight must be a number or shape ({student_logits.shape[0]},), "
                         f"got {tuple(w.shape)}")
    if bool(((w < 0) | (w > 1)).any()):
        raise ValueError("bdkd_loss: reverse_weight must lie in [0, 1]")
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    forward, reverse = _kl(log_p_t, log_p_s), _kl(log_p_s, log_p_t)
    return ((1 - w) * forward + w * reverse).mean(-1)


def entropy_gap_weights(student_logits, teacher_logits, sharpness=math.inf, temperature=1.0):
    """BD-KD's per-sample weight of the reverse KL from the entropy gap H(p_s) - H(p_t) (our reading).

    A student less confident than its teacher on a sample (H(p_s) > H(p_t)) gets the mode-seeking
    reverse KL, which sharpens it; a student more confident than the teacher gets the mass-covering
    forward KL, which spreads it: w = sigmoid(sharpness * (H(p_s) - H(p_t))). sharpness = inf is
    the hard switch (w in {0, 1}; 1/2 on an exact tie), sharpness = 0 the fixed 50/50 mix.
    (N, C), (N, C) -> (N,) weights in [0, 1], detached (a weight is not trained through).
    """
    if sharpness < 0:
        raise ValueError(f"entropy_gap_weights: sharpness must be >= 0, got {sharpness}")
    with torch.no_grad():
        gap = entropy(student_logits, temperature) - entropy(teacher_logits, temperature)
        if math.isinf(sharpness):
            return (torch.sign(gap) + 1) / 2
        return torch.sigmoid(sharpness * gap)


# the public losses of this family, re-exported by kdlib.losses
__all__ = [name for name, obj in list(globals().items())
           if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == __name__]
