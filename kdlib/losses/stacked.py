"""Logit losses for K seeds at once, (K, B, C) -> (K,): each seed's loss bit for bit.

`kdlib.batched` trains the K students of a recipe as one computation. Vmapping a method's
``terms_from_logits`` over the seeds is general but costs functorch's dispatch on every op,
which at digits scale (B = 64, C = 10) is more than the arithmetic. These forms are the same
ops on the stacked tensors with the per-seed reduction written out: ``mean(-1)`` over each
seed's B samples, the reduction vmap turns ``mean()`` into. They equal the per-seed losses of
`divergences` / `logit` bit for bit at one thread, values and gradients (tests/test_batched.py);
a method uses them in ``terms_from_stacked_logits``.

Not done, because it is not bit-identical: a log-softmax over the classes in a (K, C, B)
layout is ~15x faster for C = 10, but its log (and its backward) round differently from the
last-dim kernel in about one row in 10^4.
"""

from __future__ import annotations

import torch.nn.functional as F

from .divergences import _kl, _log_probs
from .logit import dkd_terms


def cross_entropy(logits, target):
    """`divergences.cross_entropy` per seed: logits (K, B, C), target (K, B) -> (K,)."""
    return -F.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1).mean(-1)


def kd_loss(student_logits, teacher_logits, temperature):
    """`divergences.kd_loss` per seed, T^2 KL(p_t^T || p_s^T): (K, B, C) twice -> (K,)."""
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    return temperature**2 * _kl(log_p_t, log_p_s).mean(-1)


def dkd_means(student_logits, teacher_logits, target, temperature):
    """Per-seed means of DKD's per-sample TCKD and NCKD (`logit.dkd_terms`): (K,) each.

    dkd_terms already keeps any leading dims (its reductions are over the classes only)."""
    tckd, nckd, _ = dkd_terms(student_logits, teacher_logits, target, temperature)  # (K, B) each
    return tckd.mean(-1), nckd.mean(-1)
