"""Parameter-Efficient and Student-Friendly Knowledge Distillation (Rao et al., IEEE TMM 2023).

PESF-KD keeps the teacher frozen and trains a small adapter A on its penultimate feature h_t,
jointly with the student; the student distils from the adapted logits z_t' = z_t - A(h_t).
The file also builds this chapter's online baseline's networks, the student and a trainable copy
of the teacher (`dml_pair`, trained by `kdlib.methods.dml.DML`), because the paper's cost claim is
made against online distillation.

Official code read: github.com/1170300319/PESF-KD, cv/models/adapter.py (Linear(feat -> C), then
C -> 32 -> C with a ReLU), cv/helper/loops.py (the adapted logits, the two-way KL with an
argmax <-> target logit swap, CE on the adapted logits) and cv/train_student_DDP.py (kd_T 6).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..cohort import Cohort
from ..hooks import capture
from ..losses import cross_entropy, entropy, kd_loss
from ..method import Method

# ----------------------------------------------------------------------------------------------
# Pure functions


def swap_argmax_with_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The released code's correction (cv/helper/loops.py): per row, exchange the logit of the arg-max
    class with the logit of the true class, so the true class always has the largest logit.
    (N, C), (N,) -> (N, C); rows already right are unchanged. Not in the paper's equations."""
    rows = torch.arange(len(logits), device=logits.device)
    top = logits.argmax(-1)
    out = logits.clone()
    out[rows, top] = logits[rows, target]
    out[rows, target] = logits[rows, top]
    return out


def pesf_kd_loss(student_logits, adapted_teacher_logits, temperature):
    """PESF's distillation term: T^2 KL(p_t'^T || p_s^T), batchmean, z_t' = z_t - A(h_t).

    (N, C) twice -> scalar. Unlike KD, the teacher side is NOT detached: one term trains the
    student towards the adapted teacher and the adapter towards the student (the "student-friendly"
    soft labels); the teacher's own weights stay frozen. Equal to `kd_loss` in value.
    """
    return kd_loss(student_logits, adapted_teacher_logits, temperature)


def released_code_div_loss(student_logits, teacher_logits, adapted_teacher_logits, target, temperature):
    """The two-way KL of the released code (cv/helper/loops.py, `loss_div`), batchmean, T^2 scaled:

        T^2 KL(p(swap(z_t))^T || p_s^T) + T^2 KL(p_t'^T || p(swap(z_s))^T)

    swap = `swap_argmax_with_target`; both swapped logits are detached (the code copies them through
    numpy). The student learns from the swapped, *unadapted* teacher; only the second term reaches
    the adapter. (N, C) x3, (N,) -> scalar.
    """
    z_t = swap_argmax_with_target(teacher_logits.detach(), target)
    z_s = swap_argmax_with_target(student_logits.detach(), target)
    return kd_loss(student_logits, z_t, temperature) + kd_loss(z_s, adapted_teacher_logits, temperature)


# ----------------------------------------------------------------------------------------------
# The adapter and the adapted teacher


class LogitAdapter(nn.Module):
    """The official adapter (cv/models/adapter.py): Linear(feature_dim -> C), then C -> hidden -> C
    with a ReLU. zero_init zeroes the last layer, so A(h) = 0 and PESF starts exactly at KD (the
    official code keeps PyTorch's random initialisation)."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int = 32, zero_init: bool = True):
        super().__init__()
        if feature_dim < 1 or num_classes < 2 or hidden < 1:
            raise ValueError(f"LogitAdapter: need feature_dim >= 1, num_classes >= 2, hidden >= 1, "
                             f"got {feature_dim}, {num_classes}, {hidden}")
        self.l1 = nn.Linear(feature_dim, num_classes)
        self.adapter = nn.Sequential(nn.Linear(num_classes, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        if zero_init:
            nn.init.zeros_(self.adapter[2].weight)
            nn.init.zeros_(self.adapter[2].bias)

    def forward(self, h):
        return self.adapter(self.l1(h.flatten(1)))


def teacher_parts(teacher, adapter, x, layer: str = "features"):
    """(z_t, z_t') of a frozen teacher: its logits (no gradient) and the adapted logits
    z_t' = z_t - A(h_t), h_t the output of `layer` (gradient into the adapter only)."""
    with torch.no_grad(), capture(teacher, [layer]) as feats:
        z_t = teacher(x)
    h_t = feats[layer].detach()
    return z_t, z_t - adapter(h_t)


class AdaptedTeacher(nn.Module):
    """A frozen teacher plus a trainable adapter: forward(x) = z_t - A(h_t). For evaluating the
    adapted teacher (its accuracy, its entropy); the teacher stays in eval mode and frozen."""

    def __init__(self, teacher, adapter: LogitAdapter, layer: str = "features"):
        super().__init__()
        self.teacher, self.adapter, self.layer = teacher, adapter, layer
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen: batch-norm statistics never move
        return self

    def forward(self, x):
        return teacher_parts(self.teacher, self.adapter, x, self.layer)[1]


@torch.no_grad()
def feature_dim(model, x, layer: str = "features") -> int:
    """Width of `model`'s flattened `layer` output on a sample batch x (sizes the adapter)."""
    was_training = model.training
    model.eval()
    with capture(model, [layer]) as feats:
        model(x[:2])
    model.train(was_training)
    return feats[layer].flatten(1).shape[1]


# ----------------------------------------------------------------------------------------------
# Methods


class PESF(Method):
    """PESF-KD: ce_weight * CE(z_s, y) + kd_weight * T^2 KL(p_t'^T || p_s^T) + teacher_ce_weight * CE(z_t', y).

    z_t' = z_t - A(h_t) with the frozen teacher's logits z_t and penultimate feature h_t (`layer`);
    the adapter A (`LogitAdapter`, owned here, so the training loop's optimiser trains it with the
    student) gets gradients from the KL term and from the CE on the adapted logits. Weights are the
    official run's (-r 1 -a 1, loss_teacher added with weight 1); T = 6 is its kd_T.
    train_adapter=False freezes a zero adapter: exactly KD with CE weight ce_weight and soft weight
    kd_weight (the chapter's KD baseline, with the same entropy trace). released_code=True uses the
    released code's two-way KL with the argmax <-> target swap (`released_code_div_loss`) instead.
    adapter_lr_scale multiplies the adapter's learning rate (its own optimiser group, `param_groups`;
    the official run gives it 2e-5 against the student's 0.05). Each step logs the mean entropy
    (T = 1) of the teacher side (the adapted teacher) and of the student on the batch as
    ``entropy_teacher`` and ``entropy_student`` (`Method.log`).
    """

    def __init__(self, feature_dim: int, num_classes: int, temperature: float = 6.0, ce_weight: float = 1.0,
                 kd_weight: float = 1.0, teacher_ce_weight: float = 1.0, adapter_hidden: int = 32,
                 layer: str = "features", train_adapter: bool = True, released_code: bool = False,
                 adapter_lr_scale: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"PESF: temperature must be > 0, got {temperature}")
        for name, w in (("ce_weight", ce_weight), ("kd_weight", kd_weight), ("teacher_ce_weight", teacher_ce_weight)):
            if w < 0:
                raise ValueError(f"PESF: {name} must be >= 0, got {w}")
        if not 0 < adapter_lr_scale <= 1:
            raise ValueError(f"PESF: adapter_lr_scale must be in (0, 1], got {adapter_lr_scale}")
        if released_code and not train_adapter:
            raise ValueError("PESF: released_code=True needs train_adapter=True")
        self.adapter = LogitAdapter(feature_dim, num_classes, adapter_hidden, zero_init=True)
        self.adapter.requires_grad_(train_adapter)
        self.temperature, self.layer = temperature, layer
        self.ce_weight, self.kd_weight, self.teacher_ce_weight = ce_weight, kd_weight, teacher_ce_weight
        self.train_adapter, self.released_code = train_adapter, released_code
        self.adapter_lr_scale = adapter_lr_scale

    def forward(self, student, teacher, batch):
        if teacher is None:
            raise ValueError("PESF needs a teacher (teacher=None)")
        x, y = batch[0], batch[1]
        z_s = student(x)
        z_t, z_t_adapted = teacher_parts(teacher, self.adapter, x, self.layer)
        terms = {"ce": self.ce_weight * cross_entropy(z_s, y)}
        if self.released_code:
            terms["kd"] = self.kd_weight * released_code_div_loss(z_s, z_t, z_t_adapted, y, self.temperature)
        else:
            terms["kd"] = self.kd_weight * pesf_kd_loss(z_s, z_t_adapted, self.temperature)
        if self.train_adapter and self.teacher_ce_weight:
            terms["teacher_ce"] = self.teacher_ce_weight * cross_entropy(z_t_adapted, y)
        with torch.no_grad():  # how sharp each side is (the chapter's entropy trace)
            self.log("entropy_teacher", entropy(z_t_adapted.float()).mean())
            self.log("entropy_student", entropy(z_s.float()).mean())
        return terms

    def param_groups(self, student, base_lr):
        """The student at base_lr, the adapter (all of this method's parameters) at base_lr * adapter_lr_scale."""
        return [{"params": list(student.parameters()), "lr": base_lr},
                {"params": list(self.adapter.parameters()), "lr": base_lr * self.adapter_lr_scale}]

    def teacher_side_parameters(self) -> int:
        """Trainable teacher-side parameters (the adapter's; 0 when it is frozen)."""
        return sum(p.numel() for p in self.adapter.parameters() if p.requires_grad)


def dml_pair(teacher, student, teacher_lr_scale: float = 1.0) -> Cohort:
    """This chapter's online baseline's networks: the student and a trainable copy of the trained teacher,
    as a `Cohort` named ("student", "teacher") for `kdlib.methods.dml.DML`. Its forward is the student's
    (`evaluate` scores the student); the copy learns at lr * teacher_lr_scale (its own optimiser group)
    and the original teacher is never touched."""
    teacher_copy = copy.deepcopy(teacher).requires_grad_(True)
    return Cohort([student, teacher_copy], names=("student", "teacher"), lr_scales=(1.0, teacher_lr_scale))
