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

Every seed of a born-again chain has its own teacher (its previous generation), while
`kdlib.batched.train_seeds` takes one teacher for all seeds. Without augmentation a frozen
teacher's targets never change, so `train_generation` computes each seed's targets once
(`born_again_targets`) and lets them ride in the data in place of the labels (`TargetCE`, no
teacher at training time): the K seeds of a generation then train as one batched computation.
With augmentation (the paper profile) each seed trains alone with its own teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cross_entropy, per_sample_cross_entropy, cwtm_weights, dkpp_permute, soft_cross_entropy, target_mass_cross_entropy
from ..method import Method


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
        per_sample = per_sample_cross_entropy(student_logits.float(), target)
        return {"cwtm": (weights * per_sample).sum(-1)}


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


class TargetCE(Method):
    """BAN, CWTM or DKPP with the teacher's part precomputed: `target` is (N, C), built by
    `born_again_targets` from each seed's own frozen teacher, and the loss is
    `target_mass_cross_entropy(student_logits / T, target)`. No teacher at training time."""

    needs_teacher = False

    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"target_ce": target_mass_cross_entropy(student_logits / self.temperature, target)}
