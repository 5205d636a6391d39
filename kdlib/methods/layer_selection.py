"""Revisiting Intermediate-Layer Matching in KD: layer selection doesn't matter (much)
(Yu, Wen & Mou, Findings of IJCNLP-AACL 2025).

Every student hidden layer i is matched, through its own linear adapter W_i, to one teacher
hidden layer m(i); the paper compares maps m (forward, reverse, random, all-to-one) against
no matching at all. The pure loss and the maps live here (not in `kdlib.losses`) because
they are only this chapter's.
"""

from __future__ import annotations

import torch
from torch import nn

from ..adapters import LinearAdapters
from ..hooks import FeatureHooks
from ..losses import cross_entropy, kd_loss
from ..method import Method

MAPPINGS = ("forward", "reverse", "random", "all-to-one", "none")


def layer_mapping(kind: str, n_student: int, n_teacher: int, seed: int = 0) -> list[int]:
    """The map m: student hidden layer i (0-based) -> teacher hidden layer m(i) (0-based).

    forward: i -> round((i + 1) L_t / L_s) - 1, the evenly spaced layers ending at the last
        (3 -> 6: [1, 3, 5]); reverse: the forward list reversed (the lowest student layer
        learns the teacher's last); random: a random injective map (L_s distinct teacher layers
        in random order, drawn from `seed`; the official `random_matching`); all-to-one: every
        student layer -> the last teacher hidden layer; none: the empty map (no matching).
    """
    if n_student < 1 or n_teacher < 1:
        raise ValueError(f"layer_mapping: need at least one hidden layer each (n_student={n_student}, n_teacher={n_teacher})")
    forward = [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]
    if kind == "forward":
        return forward
    if kind == "reverse":
        return forward[::-1]
    if kind == "random":
        if n_student > n_teacher:
            raise ValueError(f"layer_mapping: 'random' is injective, needs n_student <= n_teacher ({n_student} > {n_teacher})")
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(n_teacher, generator=g)[:n_student].tolist()
    if kind == "all-to-one":
        return [n_teacher - 1] * n_student
    if kind == "none":
        return []
    raise ValueError(f"layer_mapping: unknown kind {kind!r} (use one of {', '.join(MAPPINGS)})")


def hidden_layer_names(model: nn.Module) -> list[str]:
    """Names of the hidden-layer outputs of an MLP: the ReLUs of `model.features`, in order."""
    if not isinstance(getattr(model, "features", None), nn.Sequential):
        raise ValueError(f"hidden_layer_names: {type(model).__name__} has no nn.Sequential `features` (an MLP)")
    return [f"features.{k}" for k, m in enumerate(model.features) if isinstance(m, nn.ReLU)]


def hidden_states(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One forward pass -> (logits (N, C), [h_1, ..., h_L]), h_l the (N, D_l) output of hidden layer l."""
    names = hidden_layer_names(model)
    hooks = FeatureHooks(model, names)
    try:
        logits = model(x)
    finally:
        hooks.remove()
    return logits, [hooks[n] for n in names]


def layer_match_loss(adapted: list[torch.Tensor], teacher_hidden: list[torch.Tensor]) -> torch.Tensor:
    """Yu, Wen & Mou's hidden loss: mean over matched pairs (l -> m(l)) of ||W_l h_l^S - h_m(l)^T||^2.

    adapted[k], teacher_hidden[k]: (N, D) tensors, the k-th matched pair (already adapted and
    already selected by the map). The squared error is summed over the hidden dimension and
    averaged over samples (the official `_hidden_loss`: summed over D, averaged over tokens),
    then averaged over the pairs. An empty list gives 0. Returns a scalar.
    """
    if len(adapted) != len(teacher_hidden):
        raise ValueError(f"layer_match_loss: {len(adapted)} adapted layers but {len(teacher_hidden)} teacher layers")
    if not adapted:
        return torch.zeros(())
    per_pair = [(a - t).pow(2).sum(-1).mean() for a, t in zip(adapted, teacher_hidden)]
    return torch.stack(per_pair).mean()


def mlp_widths(model: nn.Module) -> list[int]:
    """Hidden widths of an MLP (out_features of the Linear layers of `features`)."""
    return [m.out_features for m in model.features if isinstance(m, nn.Linear)]


class IntermediateMatch(Method):
    """L = w_CE CE(y, p_s) + w_KL T^2 KL(p_t^T || p_s^T) + beta * layer_match_loss over the map m.

    Defaults are the official MNLI scripts': alpha_mle = 1, alpha_kl = 1, alpha_hidden = 3 (T = 1).
    `mapping` is the list m (from `layer_mapping`); the adapters are built here, one per student
    layer, student width -> width of teacher layer m(i), and trained with the student.
    mapping = [] trains CE + KD only (the paper's "none").
    """

    def __init__(self, mapping, student_widths, teacher_widths, beta=3.0, temperature=1.0,
                 kd_weight=1.0, ce_weight=1.0):
        super().__init__()
        mapping = list(mapping)
        if mapping and len(mapping) != len(student_widths):
            raise ValueError(f"IntermediateMatch: mapping has {len(mapping)} entries for {len(student_widths)} student layers")
        if any(not 0 <= j < len(teacher_widths) for j in mapping):
            raise ValueError(f"IntermediateMatch: mapping {mapping} outside the teacher's {len(teacher_widths)} layers")
        self.mapping = mapping
        self.beta, self.temperature, self.kd_weight, self.ce_weight = beta, temperature, kd_weight, ce_weight
        self.adapters = LinearAdapters(student_widths, [teacher_widths[j] for j in mapping]) if mapping else None

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        if teacher is None:
            raise ValueError("IntermediateMatch needs a teacher (teacher=None)")
        logits_s, hidden_s = hidden_states(student, x)
        with torch.no_grad():  # the teacher is frozen: no graph, no gradient
            logits_t, hidden_t = hidden_states(teacher, x)
        terms = {"ce": self.ce_weight * cross_entropy(logits_s, y),
                 "kd": self.kd_weight * kd_loss(logits_s, logits_t, self.temperature)}
        if self.mapping:
            adapted = self.adapters(hidden_s)
            terms["hidden"] = self.beta * layer_match_loss(adapted, [hidden_t[j] for j in self.mapping])
        return terms
