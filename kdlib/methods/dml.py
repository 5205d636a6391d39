"""Deep Mutual Learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018): networks trained together from
scratch (or from a trained start), each learning from the labels and from the others' predictions.

The one mutual-learning method of the book, on a `kdlib.cohort.Cohort`: PESF-KD's online baseline
(a trainable teacher copy and the student, T = 6 with T^2), BD-KD's DML pair (T = 1) and ORC's
group baseline (K students, T = 1) are this class with different arguments.
"""

from __future__ import annotations

import torch

from ..cohort import Cohort
from ..losses import cross_entropy, entropy, mutual_kl
from ..method import Method


class DML(Method):
    """Deep mutual learning in a `Cohort` of K >= 2 networks (Zhang et al. 2018, Eq. 10 for K > 2):

        network i: ce_weight * CE(y, p_i) + kl_weight / (K - 1) * sum_{j != i} s KL(sg p_j^T || p_i^T)

    s = T^2 (t_squared=True, the book's KD convention) or 1 (`mutual_kl`). The paper's setting is
    T = 1 and unit weights (then s does not matter). Terms, per network name n: ``ce_n`` and
    ``kl_n``, in the cohort's order. Each step also logs every network's mean predictive entropy
    (T = 1) on the batch as ``entropy_n`` (`Method.log`): the paper's argument is that mutual
    learning keeps the networks' predictions less sharp. Pass teacher=None to `train`; a cohort's
    extras (ORC's pivot) are not peers and are unused.
    """

    needs_teacher = False

    def __init__(self, temperature: float = 1.0, ce_weight: float = 1.0, kl_weight: float = 1.0,
                 t_squared: bool = True):
        super().__init__()
        if temperature <= 0 or ce_weight < 0 or kl_weight < 0:
            raise ValueError(f"DML: temperature must be > 0 and the weights >= 0, got {temperature}, "
                             f"{ce_weight}, {kl_weight}")
        self.temperature, self.ce_weight, self.kl_weight, self.t_squared = temperature, ce_weight, kl_weight, t_squared

    def forward(self, student, teacher, batch):
        if not isinstance(student, Cohort):
            raise TypeError(f"DML: the student must be a Cohort of the networks trained together, "
                            f"got {type(student).__name__}")
        x, y = batch[0], batch[1]
        logits = [net(x) for net in student.networks]
        k, t = len(logits), self.temperature
        # the KL terms before the CEs: the order ORC's group baseline built them in, so the autograd
        # graph, and with it the gradients, are the same bit for bit
        kl = [sum(mutual_kl(logits[i], logits[j], t, self.t_squared) for j in range(k) if j != i)
              for i in range(k)]
        ce = [cross_entropy(z, y) for z in logits]
        terms = {}
        for name, ce_i, kl_i in zip(student.names, ce, kl):
            terms[f"ce_{name}"] = self.ce_weight * ce_i
            terms[f"kl_{name}"] = self.kl_weight / (k - 1) * kl_i
        with torch.no_grad():
            for name, z in zip(student.names, logits):
                self.log(f"entropy_{name}", entropy(z.float()).mean())
        return terms
