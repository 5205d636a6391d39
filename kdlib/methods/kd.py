"""Distilling the Knowledge in a Neural Network (Hinton, Vinyals & Dean, 2015)."""

from __future__ import annotations

from ..losses import cross_entropy, kd_loss, logit_mse
from ..method import Method


class KD(Method):
    """Hinton KD: (1 - alpha) * CE(y, p_s) + alpha * T^2 KL(p_t^T || p_s^T)  (Eq. 2).

    Defaults are the CRD protocol's (RepDistiller `-r 0.1 -a 0.9`, T = 4).
    alpha = 1 trains on soft targets only (the paper's missing-class experiment).
    """

    def __init__(self, temperature=4.0, alpha=0.9):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def terms_from_logits(self, student_logits, teacher_logits, target):
        terms = {"kd": self.alpha * kd_loss(student_logits, teacher_logits, self.temperature)}
        if self.alpha < 1:
            terms["ce"] = (1 - self.alpha) * cross_entropy(student_logits, target)
        return terms


class LogitMatching(Method):
    """Ba & Caruana 2014: regress the teacher's logits, 0.5 ||z_s - z_t||^2 summed over the C classes.

    Not exactly KD's T -> inf limit: with d = z_s - z_t, T^2 KL tends to (1 / 2C) sum_c (d_c - mean(d))^2,
    so this loss is C times that limit plus (C / 2) mean(d)^2, a term for the mean logit gap that
    softmax ignores. C is kept because Ba & Caruana regress with the summed squared error; Adam is
    blind to the constant factor, SGD is not (hinton2015_kd, Method).
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def terms_from_logits(self, student_logits, teacher_logits, target):
        terms = {"mse": self.alpha * logit_mse(student_logits, teacher_logits)}
        if self.alpha < 1:
            terms["ce"] = (1 - self.alpha) * cross_entropy(student_logits, target)
        return terms
