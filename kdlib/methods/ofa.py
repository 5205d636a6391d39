"""One-for-All: Bridge the Gap Between Heterogeneous Architectures in Knowledge Distillation
(Hao, Guo, Han, Tang, Hu, Wang & Xu, NeurIPS 2023), and the FitNet baseline it is set against.

OFA: an exit branch on every student stage maps that stage's features to logits, and every
branch, like the student's own logits, learns the teacher's prediction through the
eps-modulated `ofa_loss`. Logit space is shared by every architecture family, so nothing
assumes that a transformer's tokens resemble a CNN's feature maps. The branches are trainable
parts of the method and are dropped at inference (the student is used as it is).

FitNet (Romero et al., ICLR 2015, single-stage as in the OFAKD repository): CE + KD + beta times
the hint MSE between one student stage, through an adapter (FitNets' regressor), and one
teacher stage. It is the feature-matching baseline whose failure across families motivates OFA.
"""

from __future__ import annotations

import torch
from torch import nn

from ..adapters import ExitBranch, adapter_for
from ..hooks import capture
from ..losses import cross_entropy, fitnet_loss, kd_loss, ofa_loss
from ..method import Method


class OFA(Method):
    """L = w_CE CE(y, z_s) + w_KD L_OFA(z_s, z_t; eps) + w_OFA sum_k L_OFA(b_k(F_k), z_t; eps).

    stage_names: the student's stage modules (`kdlib.hooks.stage_names`); stage_shapes: their
    output shapes without the batch (`kdlib.adapters.stage_shapes`); one `ExitBranch` b_k each.
    tokens=True: the stages are (P, D) token sequences (a PatchTransformer student).
    Defaults are the official train.py's: every weight 1, T = 1, eps = 1 (its README uses
    eps = 1.5 for DeiT-T -> ResNet18 on ImageNet). stage_names=[] gives CE + L_OFA on the
    logits alone (no branches).
    """

    def __init__(self, stage_names, stage_shapes, num_classes: int = 10, eps: float = 1.0,
                 temperature: float = 1.0, tokens: bool = False, ce_weight: float = 1.0, kd_weight: float = 1.0,
                 ofa_weight: float = 1.0, width: int = 64):
        super().__init__()
        self.stage_names, shapes = list(stage_names), list(stage_shapes)
        if len(self.stage_names) != len(shapes):
            raise ValueError(f"OFA: {len(self.stage_names)} stage names but {len(shapes)} stage shapes")
        if eps <= 0:
            raise ValueError(f"OFA: eps must be > 0, got {eps}")
        self.eps, self.temperature = eps, temperature
        self.ce_weight, self.kd_weight, self.ofa_weight = ce_weight, kd_weight, ofa_weight
        self.branches = nn.ModuleList(ExitBranch(s, num_classes, tokens=tokens, width=width) for s in shapes)

    def branch_logits(self, student, x):
        """The student's logits and every exit branch's logits on x (one forward pass)."""
        with capture(student, self.stage_names) as h:
            logits = student(x)
        return logits, [b(h[n]) for b, n in zip(self.branches, self.stage_names)]

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        if teacher is None:
            raise ValueError("OFA needs a teacher (teacher=None)")
        logits_s, exits = self.branch_logits(student, x)
        with torch.no_grad():  # the teacher is frozen: no graph, no gradient
            logits_t = teacher(x)
        terms = {"ce": self.ce_weight * cross_entropy(logits_s, y),
                 "ofa": self.kd_weight * ofa_loss(logits_s, logits_t, y, self.eps, self.temperature)}
        if exits:
            terms["ofa_branches"] = self.ofa_weight * sum(ofa_loss(z, logits_t, y, self.eps, self.temperature)
                                                          for z in exits)
        return terms


def _as_map(shape, tokens: bool):
    """(P, D) tokens -> the (D, P) channel-by-position layout of a 1-D feature map; other shapes unchanged."""
    return (shape[1], shape[0]) if tokens else tuple(shape)


class FitNet(Method):
    """L = w_CE CE(y, p_s) + w_KD T^2 KL(p_t^T || p_s^T) + beta * fitnet_loss(r(h_S), h_T).

    One matched pair: student stage `student_stage` (output shape `student_shape`) -> teacher
    stage `teacher_stage` (`teacher_shape`), through r = `adapter_for(student_shape, teacher_shape)`
    (Linear, 1x1 Conv1d + pooling, per-token Linear, or flatten + Linear). Token features meet
    a feature map position by position: (P, D) tokens are read as a (D, P) map (patch p covers
    the same stretch of signal as map position p when P equals the map's length). Both sides
    tokens: a per-token adapter. Defaults: beta = 1 (the OFAKD repository's fitnet-loss-weight),
    the KD term of the chapter's KD baseline at T = 1 with weight 1.
    """

    def __init__(self, student_stage: str, teacher_stage: str, student_shape, teacher_shape, beta: float = 1.0,
                 temperature: float = 1.0, kd_weight: float = 1.0, ce_weight: float = 1.0,
                 student_tokens: bool = False, teacher_tokens: bool = False):
        super().__init__()
        self.student_stage, self.teacher_stage = student_stage, teacher_stage
        both_tokens = student_tokens and teacher_tokens
        self.transpose_s = student_tokens and not both_tokens and len(teacher_shape) == 2
        self.transpose_t = teacher_tokens and not both_tokens and len(student_shape) == 2
        s = _as_map(student_shape, self.transpose_s)
        t = _as_map(teacher_shape, self.transpose_t)
        self.adapter = adapter_for(s, t, tokens=both_tokens)
        self.beta, self.temperature, self.kd_weight, self.ce_weight = beta, temperature, kd_weight, ce_weight

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        if teacher is None:
            raise ValueError("FitNet needs a teacher (teacher=None)")
        with capture(student, [self.student_stage]) as hs:
            logits_s = student(x)
        with torch.no_grad(), capture(teacher, [self.teacher_stage]) as ht:
            logits_t = teacher(x)
        h_s, h_t = hs[self.student_stage], ht[self.teacher_stage]
        if self.transpose_s:
            h_s = h_s.transpose(1, 2)
        if self.transpose_t:
            h_t = h_t.transpose(1, 2)
        return {"ce": self.ce_weight * cross_entropy(logits_s, y),
                "kd": self.kd_weight * kd_loss(logits_s, logits_t, self.temperature),
                "hint": self.beta * fitnet_loss(self.adapter(h_s), h_t)}
