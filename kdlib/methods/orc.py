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

`GroupDML` is the group baseline without teachers: Deep Mutual Learning among the same students.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import cross_entropy, kd_loss
from ..method import Method


class StudentGroup(nn.Module):
    """Students (and optionally the pivot teacher) as one module for the one training loop.

    ``forward`` returns the logits of student ``scored`` so `kdlib.train.evaluate(group, ...)` scores
    one named student; evaluate ``group.students[i]`` for the others. ``promotions[i]`` counts the
    iterations in which student i was the temporary teacher (written by `ORC`).
    """

    def __init__(self, students, pivot: nn.Module | None = None, scored: int = 0):
        super().__init__()
        if len(students) < 2:
            raise ValueError(f"StudentGroup: students must hold at least 2 networks, got {len(students)}")
        if not 0 <= scored < len(students):
            raise ValueError(f"StudentGroup: scored must index a student (0..{len(students) - 1}), got {scored}")
        self.students = nn.ModuleList(students)
        self.pivot = pivot
        self.scored = scored
        self.register_buffer("promotions", torch.zeros(len(students), dtype=torch.long))

    def forward(self, x):
        return self.students[self.scored](x)


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
    """One ORC iteration on a `StudentGroup` (students + pivot); trained with teacher=None.

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
        if not isinstance(student, StudentGroup):
            raise TypeError(f"ORC: the student must be a StudentGroup, got {type(student).__name__}")
        pivot = student.pivot if student.pivot is not None else teacher
        if pivot is None:
            raise ValueError("ORC: needs a pivot teacher (StudentGroup(pivot=...) or teacher=)")
        x, y = batch[0], batch[1]
        logits = [s(x) for s in student.students]
        # 1. feedback samples and the role change, from the students' predictions before this update
        detached = [z.detach() for z in logits]
        feedback = feedback_mask(detached, y)
        top = int(rank_students(detached, y)[0])
        student.promotions[top] += 1
        # 2. intensive teaching of the pivot on mixup of the batch with the feedback samples
        terms = {}
        train_pivot = self.update_pivot and student.pivot is not None
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


class GroupDML(Method):
    """Deep Mutual Learning (Zhang et al. 2018, Eq. 10 for K > 2 networks) in a `StudentGroup`:

    each student i: CE(y, p_i) + kl_weight / (K - 1) * sum_{j != i} KL(p_j || p_i), p_j detached,
    at temperature 1 as in DML. No teacher; the group's pivot, if any, is unused.
    """

    needs_teacher = False

    def __init__(self, kl_weight=1.0, temperature=1.0):
        super().__init__()
        if kl_weight < 0 or temperature <= 0:
            raise ValueError(f"GroupDML: kl_weight must be >= 0 and temperature > 0, got {kl_weight}, {temperature}")
        self.kl_weight, self.temperature = kl_weight, temperature

    def forward(self, student, teacher, batch):
        if not isinstance(student, StudentGroup):
            raise TypeError(f"GroupDML: the student must be a StudentGroup, got {type(student).__name__}")
        x, y = batch[0], batch[1]
        logits = [s(x) for s in student.students]
        k = len(logits)
        kl = sum(kd_loss(logits[i], logits[j].detach(), self.temperature)
                 for i in range(k) for j in range(k) if j != i)
        return {"ce": sum(cross_entropy(z, y) for z in logits), "kl": self.kl_weight / (k - 1) * kl}
