"""Feature-distillation losses: what a student's intermediate stages should copy from a teacher.

* `fitnet_loss`: FitNets' hint (Romero et al., ICLR 2015): the squared error between the
  adapted student feature (the "guided" layer through its regressor) and the teacher's "hint"
  feature, as ``F.mse_loss`` reduces it in the official code of Hao et al. (distillers/fitnet.py):
  the mean over every element.
* `ofa_loss`: One-for-All KD's loss (Hao et al., NeurIPS 2023; as the official distillers/ofa.py computes it): cross-entropy to the
  teacher's probabilities with the target class enhanced by the modulating exponent eps, used
  on the student's logits and on the logits of every exit branch.

The teacher's side is a target: it is detached, no gradient reaches the teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fitnet_loss", "ofa_loss"]


def fitnet_loss(student_feature_adapted: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss: mean over all elements of (r(h_S) - h_T)^2.

    student_feature_adapted: the student's guided feature after its adapter r (any shape,
    batch first); teacher_feature: the teacher's hint feature of the same shape. The paper
    writes (1/2)||h_T - r(h_S)||^2; the mean over elements (``F.mse_loss``, the official
    OFAKD FitNet) only rescales it, and the method's weight beta absorbs the scale.
    Returns a scalar, computed in float32.
    """
    if student_feature_adapted.shape != teacher_feature.shape:
        raise ValueError(f"fitnet_loss: adapted student feature {tuple(student_feature_adapted.shape)} "
                         f"and teacher feature {tuple(teacher_feature.shape)} differ in shape")
    return F.mse_loss(student_feature_adapted.float(), teacher_feature.detach().float())


def ofa_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, eps: float,
             temperature: float = 1.0) -> torch.Tensor:
    """One-for-All's loss (Hao et al. 2023; the official ``ofa_loss``), batch mean of

        L_OFA = - sum_c [ (p_t,c + 1[c = y])^eps - 1[c = y] ] log p_s,c

    with p = softmax(z / T). The target class gets the weight (1 + p_t,y)^eps - 1 and every
    other class p_t,c^eps. eps = 1 is the plain soft-label cross-entropy -sum_c p_t,c log p_s,c
    (= KL(p_t || p_s) + H(p_t)); eps > 1 raises the target class's weight relative to the rest
    ("adaptive target enhancement": more so where the teacher is confident) and shrinks the
    non-target weights. The weights do not sum to 1 for eps != 1. No T^2 factor (the official
    ``ofa_loss`` has none; its default T is 1).

    student_logits, teacher_logits: (N, C); target: (N,) class indices. Returns a scalar
    (sum over classes, mean over samples), in float32; no gradient reaches the teacher.
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"ofa_loss: logits must be matching (N, C), got student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}")
    if eps <= 0:
        raise ValueError(f"ofa_loss: eps must be > 0, got {eps}")
    if temperature <= 0:
        raise ValueError(f"ofa_loss: temperature must be > 0, got {temperature}")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p_t = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    mask = F.one_hot(target, student_logits.shape[-1]).float()
    weight = (p_t + mask).pow(eps) - mask
    return -(weight * log_p_s).sum(-1).mean(-1)
