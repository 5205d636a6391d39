"""ORC: Network Group-based Knowledge Distillation using Online Role Change (Choi, Cho, Jeong & Hwang, ICCV 2023).

A group of students and a pretrained *pivot teacher* are trained as one module. Each iteration
(our reading of the paper's Sec. 3, which could not be read here; the abstract and the spec are
the sources):

1. the students predict the batch; the samples that at least one of them misclassifies are the
   *feedback samples* (`feedback_mask`), and the students are ranked by the batch's accuracy
   (`rank_students`); the top one is promoted to *temporary teacher* for this iteration;
2. *intensive teaching*: the pivot is trained on mixup of the ordinary batch with feedback samples
   (`mix_with_feedback`, `mixup_feedback_loss`);
3. *private teaching*: the temporary teacher learns from the labels and from the pivot;
4. *group teaching*: every other student learns from the labels, the temporary teacher and the pivot.

The group baseline without teachers, Deep Mutual Learning among the same students, is
`kdlib.methods.dml.DML` on the same group.
"""

from __future__ import annotations

import torch
from torch import nn

from ..cohort import Cohort
from ..losses import cross_entropy, kd_loss
from ..method import Method


def student_group(students, pivot: nn.Module | None = None, scored: int = 0) -> Cohort:
    """Students (and optionally the pivot teacher) as one module for the one training loop: a `Cohort`
    of the students, named s1 .. sK, with the pivot as an extra (``group.pivot``, trained with them).

    ``forward`` returns the logits of student ``scored`` so `kdlib.train.evaluate(group, ...)` scores
    one named student; evaluate ``group.networks[i]`` for the others. ``group.promotions[i]`` counts
    the iterations in which student i was the temporary teacher (written by `ORC`).
    """
    group = Cohort(students, names=[f"s{i + 1}" for i in range(len(students))], scored=scored, pivot=pivot)
    group.register_buffer("promotions", torch.zeros(len(students), dtype=torch.long))
    return group


def feedback_mask(student_logits, target):
    """The feedback samples: (N,) bool, True where at least one student's top-1 class is wrong.

    student_logits: a list of K (N, C) tensors; target: (N,) class indices.
    """
    wrong = torch.stack([logits.argmax(-1) != target for logits in student_logits])
    return wrong.any(0)


def rank_students(student_logits, target):
    """The students' order on this batch, best first: (K,) indices by accuracy, ties by lower CE.

    The role change of ORC: the first one is promoted to temporary teacher for the iteration.
    """
    with torch.no_grad():
        acc = torch.stack([(logits.argmax(-1) == target).float().mean() for logits in student_logits])
        ce = torch.stack([cross_entropy(logits.float(), target) for logits in student_logits])
        # accuracy is a multiple of 1/N: a CE in [0, 1) below one step of it only breaks ties
        score = acc * len(target) - ce.clamp(max=1e6) / (ce.max() + 1.0)
    return torch.argsort(score, descending=True)


def mix_with_feedback(x, feedback_x, lam, generator=None):
    """Mixup of each ordinary sample with a feedback sample drawn uniformly (with replacement).

    x: (N, ...) the ordinary batch; feedback_x: (M, ...) with M >= 1; lam in [0, 1].
    Returns (x_mix, idx): x_mix = lam * x + (1 - lam) * feedback_x[idx], idx (N,) the drawn indices.
    """
    if len(feedback_x) == 0:
        raise ValueError("mix_with_feedback: feedback_x is empty (no misclassified sample to mix)")
    idx = torch.randint(len(feedback_x), (len(x),), generator=generator, device=feedback_x.device)
    return lam * x + (1 - lam) * feedback_x[idx], idx


def mixup_feedback_loss(logits, target, feedback_target, lam):
    """Intensive teaching (ORC): lam * CE(y_t, p(x_mix)) + (1 - lam) * CE(y_F, p(x_mix)).

    logits (N, C) of the pivot on the mixed inputs; target, feedback_target (N,) the labels of the
    ordinary and of the feedback half of each mix; lam in [0, 1]. Mean over samples; a scalar.
    """
    return lam * cross_entropy(logits, target) + (1 - lam) * cross_entropy(logits, feedback_target)


class ORC(Method):
    """One ORC iteration on a `student_group` (students + pivot); trained with teacher=None.

    intensive:  mixup_feedback_loss(pivot(x_mix), y, y_F, lam), lam ~ Beta(mixup_alpha, mixup_alpha)
                (only if update_pivot and the batch has feedback samples; else the pivot is frozen)
    private:    (1 - beta) CE(y, p_TT) + beta KD(p_TT <- p_PT)                    temporary teacher
    group:      (1 - beta) CE(y, p_S) + beta [KD(p_S <- p_TT) + KD(p_S <- p_PT)]   every other student
    KD(p <- q) = T^2 KL(q^T || p^T) with q detached (`kd_loss`). The pivot's targets are its logits on
    the ordinary batch, without gradient. If the group has no pivot, a frozen `teacher` is used.
    """

    needs_teacher = False

    def __init__(self, beta=0.5, temperature=4.0, mixup_alpha=1.0, update_pivot=True):
        super().__init__()
        if not 0 <= beta <= 1:
            raise ValueError(f"ORC: beta must be in [0, 1], got {beta}")
        if temperature <= 0 or mixup_alpha <= 0:
            raise ValueError(f"ORC: temperature and mixup_alpha must be > 0, got {temperature}, {mixup_alpha}")
        self.beta, self.temperature, self.mixup_alpha, self.update_pivot = beta, temperature, mixup_alpha, update_pivot

    def draw_lambda(self, device):
        """The mixup weight of this iteration, from the global (seeded) stream."""
        a = torch.tensor(float(self.mixup_alpha))
        return float(torch.distributions.Beta(a, a).sample())

    def forward(self, student, teacher, batch):
        if not (isinstance(student, Cohort) and hasattr(student, "promotions")):
            raise TypeError(f"ORC: the student must be a student_group(...), got {type(student).__name__}")
        own_pivot = getattr(student, "pivot", None)
        pivot = own_pivot if own_pivot is not None else teacher
        if pivot is None:
            raise ValueError("ORC: needs a pivot teacher (student_group(..., pivot=...) or teacher=)")
        x, y = batch[0], batch[1]
        logits = [s(x) for s in student.networks]
        # 1. feedback samples and the role change, from the students' predictions before this update
        detached = [z.detach() for z in logits]
        feedback = feedback_mask(detached, y)
        top = int(rank_students(detached, y)[0])
        student.promotions[top] += 1
        # 2. intensive teaching of the pivot on mixup of the batch with the feedback samples
        terms = {}
        train_pivot = self.update_pivot and own_pivot is not None
        if train_pivot and not any(p.requires_grad for p in pivot.parameters()):
            raise ValueError("ORC: update_pivot=True but the pivot's parameters do not require grad "
                             "(a zoo teacher is frozen: copy it and call requires_grad_(True))")
        if train_pivot and bool(feedback.any()):
            lam = self.draw_lambda(x.device)
            x_mix, idx = mix_with_feedback(x, x[feedback], lam)
            terms["intensive"] = mixup_feedback_loss(pivot(x_mix), y, y[feedback][idx], lam)
        with torch.no_grad():
            pivot_logits = pivot(x)
        # 3. private teaching of the temporary teacher; 4. group teaching of the others
        b, t = self.beta, self.temperature
        tt = detached[top]
        ce = [cross_entropy(z, y) for z in logits]
        terms["ce_tt"] = (1 - b) * ce[top]
        terms["kd_tt_pivot"] = b * kd_loss(logits[top], pivot_logits, t)
        others = [i for i in range(len(logits)) if i != top]
        terms["ce_group"] = (1 - b) * sum(ce[i] for i in others)
        terms["kd_group_tt"] = b * sum(kd_loss(logits[i], tt, t) for i in others)
        terms["kd_group_pivot"] = b * sum(kd_loss(logits[i], pivot_logits, t) for i in others)
        return terms
