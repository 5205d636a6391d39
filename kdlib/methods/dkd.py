"""Decoupled Knowledge Distillation (Zhao, Cui, Song, Qiu & Liang, CVPR 2022)."""

from __future__ import annotations

from ..losses import cross_entropy, dkd_terms
from ..method import Method


class DKD(Method):
    """DKD: ce_weight * CE + warm-up * T^2 * (alpha * TCKD + beta * NCKD)   (Eq. 8).

    Defaults are mdistiller's `cfg.DKD` (CE 1.0, alpha 1, beta 8, T 4, warm-up 20 epochs);
    the CIFAR-100 configs use beta 2 for res56->res20 / res110->res32 and 6 for the WRN
    and VGG pairs. alpha = 0 or beta = 0 drops that term (the paper's TCKD/NCKD ablation, Sec. 3).

    Warm-up: mdistiller multiplies the distillation part by min(epoch / warmup, 1) with a
    1-based epoch (the first epoch gets 1/20, epoch 20 the full weight). The book's loop
    counts epochs from 0, so the factor here is min((epoch + 1) / warmup, 1): the same
    numbers epoch for epoch. warmup_epochs = 0 disables it.
    """

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, ce_weight=1.0, warmup_epochs=20):
        super().__init__()
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.ce_weight, self.warmup_epochs = ce_weight, warmup_epochs

    def warmup(self) -> float:
        """Linear warm-up factor of the distillation part for the current (0-based) epoch."""
        if not self.warmup_epochs:
            return 1.0
        return min((self.epoch + 1) / self.warmup_epochs, 1.0)

    def terms_from_logits(self, student_logits, teacher_logits, target):
        tckd, nckd, _ = dkd_terms(student_logits, teacher_logits, target, self.temperature)  # (..., N) each
        scale = self.warmup() * self.temperature**2
        terms = {}
        if self.ce_weight:
            terms["ce"] = self.ce_weight * cross_entropy(student_logits, target)
        if self.alpha:
            terms["tckd"] = scale * self.alpha * tckd.mean(-1)
        if self.beta:
            terms["nckd"] = scale * self.beta * nckd.mean(-1)
        return terms
