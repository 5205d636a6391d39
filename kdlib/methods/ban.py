"""Born-Again Neural Networks (Furlanello, Lipton, Tschannen, Itti & Anandkumar, ICML 2018).

A born-again student has its teacher's architecture. Generation 0 is trained on labels;
generation k is trained to match the output distribution of generation k - 1. The paper's
two ablations ask *which part* of the teacher's output helps:

* CWTM keeps only the teacher's confidence (a per-sample weight on the label loss);
* DKPP keeps the teacher's argmax and the *values* of the other entries, but permutes them,
  destroying which classes the teacher thinks are similar.

No official code exists. The unofficial `nocotan/born_again_neuralnet` mixes labels and KD
(alpha = 0.2, T = 20), which is not the paper's objective; here the default is the paper's
plain BAN loss: cross-entropy to the previous generation's softmax at T = 1, no label term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cross_entropy, cwtm_weights, dkpp_permute, soft_cross_entropy
from .base import Method


class BornAgain(Method):
    """BAN: CE(p_{k-1}(x), p_k(x)) = -sum_c p_{k-1,c} log p_{k,c}, the previous generation as target.

    temperature = 1 is the paper's setting. label_weight > 0 adds the label CE (the paper's
    "BAN+L" variant); the default 0 is the plain born-again objective.
    """

    def __init__(self, temperature=1.0, label_weight=0.0):
        super().__init__()
        self.temperature, self.label_weight = temperature, label_weight

    def terms_from_logits(self, student_logits, teacher_logits, target):
        soft_target = F.softmax(teacher_logits.detach().float() / self.temperature, dim=-1)
        terms = {"ban": soft_cross_entropy(student_logits / self.temperature, soft_target)}
        if self.label_weight > 0:
            terms["ce"] = self.label_weight * cross_entropy(student_logits, target)
        return terms


class CWTM(Method):
    """Confidence-Weighted by Teacher Max: sum_s w_s CE(y_s, p_s), w_s = max p_t(x_s) / sum_u max p_t(x_u)."""

    def terms_from_logits(self, student_logits, teacher_logits, target):
        weights = cwtm_weights(teacher_logits)
        per_sample = F.cross_entropy(student_logits.float(), target, reduction="none")
        return {"cwtm": (weights * per_sample).sum()}


class DKPP(Method):
    """Dark Knowledge with Permuted Predictions: CE to the teacher's softmax with its non-argmax
    entries randomly permuted (a fresh permutation per sample and step, from the global stream
    that `train` seeds)."""

    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student, teacher, batch):
        x = batch[0]
        student_logits = student(x)
        with torch.no_grad():
            target = dkpp_permute(F.softmax(teacher(x).float() / self.temperature, dim=-1))
        return {"dkpp": soft_cross_entropy(student_logits / self.temperature, target)}


def generations(teacher, make_student, data, n, method=None, **train_kwargs):
    """Born-again sequence: [teacher, student_1, ..., student_n], student_k taught by student_{k-1}.

    make_student(k) -> a fresh, untrained model (its init is the caller's choice, e.g. seeded by k);
    method defaults to `BornAgain()`; train_kwargs go to `kdlib.train.train`.
    """
    from ..train import train  # here, not at import: kdlib.train imports kdlib.methods

    chain = [teacher]
    for k in range(1, n + 1):
        student = make_student(k)
        train(student, method or BornAgain(), data, teacher=chain[-1], **train_kwargs)
        chain.append(student)
    return chain


@torch.no_grad()
def ensemble_logits(models, x):
    """BAN ensemble: log of the mean of the models' softmax outputs, (N, C) (argmax = ensemble vote)."""
    from ..train import predict_logits

    probs = torch.stack([predict_logits(m, x).softmax(-1) for m in models]).mean(0)
    return probs.clamp_min(1e-12).log()
