"""Dual-Head Knowledge Distillation (Yang, Zong, Huang, Feng & An, 2024; KDD 2025).

Official code: penghui-yang/DHKD (`distiller_zoo/BinaryKLNorm.py`, `helper/optimizer.py`,
`models/classifier.py`). The paper's observation: cross-entropy and a logit-level loss
(BinaryKL) applied to the *same* linear classifier pull it in conflicting directions and the
head collapses; giving the distillation loss its own auxiliary head on the shared features keeps
the backbone's gain. Optionally the KD gradient is projected PCGrad-style when it conflicts
with the CE gradient ("gradient alignment", GA).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import binary_kl, binary_kl_norm, cross_entropy
from ..method import Method

LOSSES = {"binary_kl_norm": binary_kl_norm, "binary_kl": binary_kl}
HEAD_NAMES = ("fc", "linear", "classifier")  # the classifier of kdlib's MLP / CIFAR models


def aux_head(feature_dim, num_classes, nonlinear=True, dropout=0.1):
    """The auxiliary head: official `NonLinearClassifier` (Linear-200, Dropout, BN, ReLU, Linear) or a Linear."""
    if not nonlinear:
        return nn.Linear(feature_dim, num_classes)
    return nn.Sequential(nn.Linear(feature_dim, 200), nn.Dropout(dropout), nn.BatchNorm1d(200), nn.ReLU(),
                         nn.Linear(200, num_classes))


def classifier_of(student, name=None):
    """The student's final linear layer (its input is the penultimate feature)."""
    for n in ([name] if name else HEAD_NAMES):
        if hasattr(student, n):
            return getattr(student, n)
    raise AttributeError(f"DHKD: {type(student).__name__} has none of {HEAD_NAMES}; pass head=")


class DHKD(Method):
    """gamma * CE(y, head_1(h)) + alpha * BinaryKL-Norm(head_2(h), z_t), h the student's penultimate feature.

    Defaults: the README command `--dual_head --nonlinear --ga -r 1 -a 1 --BinaryKL_T 2`.
    dual_head=False puts the KD term on the student's own head (the collapsing baseline);
    gamma=0 trains on the KD term alone. The aux head belongs to this method (its parameters
    are optimised with the student's); it reads the input of the student's classifier through a
    forward pre-hook, so the student's forward stays logits-only and inference uses head 1.
    """

    def __init__(self, feature_dim, num_classes, temperature=2.0, gamma=1.0, alpha=1.0, dual_head=True,
                 nonlinear=True, gradient_alignment=True, loss="binary_kl_norm", dropout=0.1, head=None):
        super().__init__()
        self.temperature, self.gamma, self.alpha = temperature, gamma, alpha
        self.dual_head, self.gradient_alignment, self.head = dual_head, gradient_alignment, head
        self.loss = LOSSES[loss]
        self.aux = aux_head(feature_dim, num_classes, nonlinear, dropout) if dual_head else None
        self.conflicts, self.steps = torch.zeros(()), 0  # GA diagnostics: steps with <g_KD, g_CE> < 0

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        captured = {}
        hook = classifier_of(student, self.head).register_forward_pre_hook(
            lambda module, inputs: captured.__setitem__("h", inputs[0]))
        try:
            student_logits = student(x)
        finally:
            hook.remove()
        with torch.no_grad():
            teacher_logits = teacher(x)
        kd_logits = self.aux(captured["h"]) if self.dual_head else student_logits
        terms = {"kd": self.alpha * self.loss(kd_logits, teacher_logits, self.temperature)}
        if self.gamma > 0:
            terms["ce"] = self.gamma * F.cross_entropy(student_logits, y)
        # plain list, not a registered submodule: the parameters GA projects over
        self._params = [p for p in [*student.parameters(), *self.parameters()] if p.requires_grad]
        return terms

    def backward(self, loss, terms):
        """Gradient alignment (official `OptimGradAlign`): if <g_KD, g_CE> < 0 over all parameters,
        g_KD <- g_KD - <g_KD, g_CE> / ||g_CE||^2 * g_CE; then grad = g_CE + g_KD."""
        if not (self.gradient_alignment and "ce" in terms and "kd" in terms):
            loss.backward()
            return
        params = self._params
        g_ce = torch.autograd.grad(terms["ce"], params, retain_graph=True, allow_unused=True)
        g_kd = torch.autograd.grad(terms["kd"], params, allow_unused=True)
        g_ce = [torch.zeros_like(p) if g is None else g for g, p in zip(g_ce, params)]
        g_kd = [torch.zeros_like(p) if g is None else g for g, p in zip(g_kd, params)]
        dot = sum((k * c).sum() for k, c in zip(g_kd, g_ce))
        norm2 = sum((c * c).sum() for c in g_ce).clamp_min(1e-30)
        scale = dot.clamp(max=0.0) / norm2  # 0 unless the gradients conflict (no host sync)
        for p, c, k in zip(params, g_ce, g_kd):
            p.grad = c + k - scale * c
        self.conflicts = self.conflicts.to(dot.device) + (dot < 0).float()
        self.steps += 1


class SharedHeadKD(Method):
    """gamma * CE(y, z_s) + alpha * loss(z_s, z_t) on the student's own (single) head.

    The one-head baselines of the paper's Fig. 1(b) ("BinaryKL alone" with gamma=0, "CE + BinaryKL"
    with gamma=1): the same loss as ``DHKD(dual_head=False, gradient_alignment=False)``, written as
    a logits-only method so that the seeds of a recipe train as one batched computation
    (`kdlib.batched.train_seeds`). loss: "binary_kl" (the paper's Fig. 1) or "binary_kl_norm".
    """

    def __init__(self, temperature=2.0, gamma=1.0, alpha=1.0, loss="binary_kl"):
        super().__init__()
        self.temperature, self.gamma, self.alpha, self.loss_name = temperature, gamma, alpha, loss
        if loss not in LOSSES:
            raise ValueError(f"SharedHeadKD: loss must be one of {sorted(LOSSES)}, got {loss!r}")

    def terms_from_logits(self, student_logits, teacher_logits, target):
        terms = {"kd": self.alpha * LOSSES[self.loss_name](student_logits, teacher_logits, self.temperature)}
        if self.gamma > 0:
            terms["ce"] = self.gamma * cross_entropy(student_logits, target)
        return terms
