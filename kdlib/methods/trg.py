"""Knowledge Distillation via Token-level Relationship Graph, TRG (Zhang, Liu & He, arXiv 2023).

The student copies three relations among the teacher's tokens (`kdlib.losses.relation`): the
kNN graph over all tokens of a batch (local), each token's identity among all of them (global,
InfoNCE with a decreasing temperature) and the token-to-token attention-like context inside each
example (inner), on top of CE + KD. Also here: the long-tailed training split of the chapter and
the make/fit functions of its PatchTransformer teachers (`kdlib.zoo.get(spec, make=, fit=)`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..adapters import adapter_for
from ..hooks import capture, features, stage_names
from ..losses import (cross_entropy, global_temperature, kd_loss, token_infonce_loss, token_inner_loss,
                      token_local_loss)
from ..method import Method


@torch.no_grad()
def teacher_outputs(teacher, x, layer=None, batch_size: int = 1000):
    """The frozen teacher's (N, P, D) tokens at `layer` (default: its last block) and (N, C) logits on x.

    Computed once for a fixed training set (no augmentation), they ride along in the data tuple
    ``(x, y, tokens, logits)``, so `TRG` needs no teacher forward per step: the same numbers
    (eval mode, no dropout), a fraction of the cost, as `kdlib.train`'s cached teacher logits.
    """
    layer = layer or stage_names(teacher)[-1]
    logits, outputs = features(teacher, x, [layer], batch_size)
    return outputs[layer], logits


class TRG(Method):
    """TRG: (1 - kd_alpha) CE + kd_alpha T^2 KL + inner_weight L_inner + local_weight L_local + global_weight L_global.

    Tokens are the outputs of the last block of the student and of the teacher (`stage_names`,
    captured with forward hooks). The student's tokens are first mapped to the teacher's width by
    a per-token linear adapter (`adapter_for(..., tokens=True)`); the inner and local terms compare
    these with the teacher's tokens; the global term compares both after a linear projection head
    each (student side: on the adapted tokens; teacher side: on the frozen teacher's tokens), at
    the temperature `global_temperature(epoch, epochs, tau_start, tau_end)`. `tokens_per_example`
    > 0 samples that many tokens of each example for the two graph terms (the paper samples
    tokens; 0: all). Weights zero drop a term, so one class also builds the ablations.
    The adapter and heads are trained with the student and discarded after.
    Needs `student_shape` / `teacher_shape`: the (P, D) token shapes of the two hooked blocks.
    Batches may carry the teacher's cached outputs, ``(x, y, tokens, logits)`` (`teacher_outputs`).
    """

    def __init__(self, student_shape, teacher_shape, inner_weight=1.0, local_weight=1.0, global_weight=1.0,
                 kd_alpha=0.9, temperature=4.0, k=8, sigma=None, tau_start=0.5, tau_end=0.1, proj_dim=32,
                 tokens_per_example=0, student_layer=None, teacher_layer=None):
        super().__init__()
        for name, w in (("inner_weight", inner_weight), ("local_weight", local_weight),
                        ("global_weight", global_weight)):
            if w < 0:
                raise ValueError(f"TRG: {name} must be >= 0, got {w}")
        if not 0 <= kd_alpha <= 1:
            raise ValueError(f"TRG: kd_alpha must be in [0, 1], got {kd_alpha}")
        if len(student_shape) != 2 or len(teacher_shape) != 2 or student_shape[0] != teacher_shape[0]:
            raise ValueError(f"TRG: need (P, D) token shapes with the same P, got {student_shape} and {teacher_shape}")
        self.inner_weight, self.local_weight, self.global_weight = inner_weight, local_weight, global_weight
        self.kd_alpha, self.temperature, self.k, self.sigma = kd_alpha, temperature, k, sigma
        self.tau_start, self.tau_end, self.tokens_per_example = tau_start, tau_end, tokens_per_example
        self.student_layer, self.teacher_layer = student_layer, teacher_layer
        width = teacher_shape[1]
        self.adapter = adapter_for(student_shape, teacher_shape, tokens=True)
        self.student_head = nn.Linear(width, proj_dim)
        self.teacher_head = nn.Linear(width, proj_dim)

    def tau(self) -> float:
        """This epoch's temperature of the global term."""
        return global_temperature(self.epoch, self.epochs or 1, self.tau_start, self.tau_end)

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        s_name = self.student_layer or stage_names(student)[-1]
        with capture(student, [s_name]) as hs:
            logits = student(x)
        if len(batch) >= 4:  # (x, y, teacher tokens, teacher logits): the frozen teacher's outputs, computed once
            t, teacher_logits = batch[2], batch[3]
        else:
            if teacher is None:
                raise ValueError("TRG needs a teacher (teacher=None) or its cached outputs in the batch")
            t, teacher_logits = teacher_outputs(teacher, x, self.teacher_layer)
        s, t = self.adapter(hs[s_name]), t.detach()
        terms = {"kd": self.kd_alpha * kd_loss(logits, teacher_logits, self.temperature)}
        if self.kd_alpha < 1:
            terms["ce"] = (1 - self.kd_alpha) * cross_entropy(logits, y)
        if self.inner_weight:
            terms["inner"] = self.inner_weight * token_inner_loss(s, t)
        if self.tokens_per_example and self.tokens_per_example < s.shape[1]:
            # the same random tokens of every example for both sides (torch's stream, seeded by `train`)
            pick = torch.randperm(s.shape[1], device=s.device)[:self.tokens_per_example]
            s, t = s[:, pick], t[:, pick]
        if self.local_weight:
            terms["local"] = self.local_weight * token_local_loss(s, t, self.k, self.sigma)
        if self.global_weight:
            terms["global"] = self.global_weight * token_infonce_loss(self.student_head(s), self.teacher_head(t),
                                                                      self.tau())
        return terms
