"""Relational Knowledge Distillation (Park, Kim, Lu & Cho, CVPR 2019)."""

from __future__ import annotations

import torch

from ..hooks import capture, features
from ..losses import cross_entropy, kd_loss, rkd_angle_loss, rkd_distance_loss
from ..method import Method


class RKD(Method):
    """RKD: ce_weight * CE + kd_weight * KD + dist_weight * L_RKD-D + angle_weight * L_RKD-A  (Eq. 2, 5, 7).

    The relations are those of the embeddings captured by a forward hook on `layer` of the student
    and of the frozen teacher (the penultimate `features` of the book's models). Defaults are the
    classification setting the spec lists (lambda_D = 25, lambda_A = 50, RepDistiller's w_d / w_a);
    metric learning uses dist_weight = 1, angle_weight = 2 and ce_weight = 0 (no labels: the official
    examples/cub200.sh). `layer` / `teacher_layer` name the hooked modules (teacher_layer defaults to
    layer; a metric-learning student may use its linear embedding, before the ReLU). kd_weight > 0 adds Hinton's KD term (KD + RKD). angle_max_batch caps the batch
    of the O(N^3) angle term (0: the whole batch).
    """

    def __init__(self, dist_weight=25.0, angle_weight=50.0, ce_weight=1.0, kd_weight=0.0, temperature=4.0,
                 angle_max_batch=0, layer="features", teacher_layer=None):
        super().__init__()
        for name, w in (("dist_weight", dist_weight), ("angle_weight", angle_weight),
                        ("ce_weight", ce_weight), ("kd_weight", kd_weight)):
            if w < 0:
                raise ValueError(f"RKD: {name} must be >= 0, got {w}")
        self.dist_weight, self.angle_weight = dist_weight, angle_weight
        self.ce_weight, self.kd_weight, self.temperature = ce_weight, kd_weight, temperature
        self.angle_max_batch, self.layer = angle_max_batch, layer
        self.teacher_layer = teacher_layer or layer

    def forward(self, student, teacher, batch):
        if teacher is None:
            raise ValueError("RKD needs a teacher (teacher=None)")
        x, y = batch[0], batch[1]
        with capture(student, [self.layer]) as hs:
            logits = student(x)
        with torch.no_grad(), capture(teacher, [self.teacher_layer]) as ht:
            teacher_logits = teacher(x)
        s, t = hs[self.layer].flatten(1), ht[self.teacher_layer].flatten(1).detach()
        return self.terms_from_outputs(logits, s, teacher_logits, t, y)

    def terms_from_outputs(self, student_logits, student_features, teacher_logits, teacher_features, target):
        """The terms from the logits and the (N, D) embeddings, or from K seeds' (K, N, D) stacks
        (`kdlib.batched`): CE and KD reduce over the sample axis; each seed's relation terms are
        the one-seed functions on its own slice (their (N, N) relations need no batching), so
        on an MLP each seed's terms and gradients are its one-seed ones bit for bit."""
        s, t = student_features, teacher_features
        if s.dim() == 3:  # K seeds: one slice per seed, shared by both relations, so each seed's gradient
            s, t = s.unbind(0), t.unbind(0)  # sums their contributions exactly as its one-seed graph does
        terms = {}
        if self.ce_weight:
            terms["ce"] = self.ce_weight * cross_entropy(student_logits, target)
        if self.kd_weight:
            terms["kd"] = self.kd_weight * kd_loss(student_logits, teacher_logits, self.temperature)
        if self.dist_weight:
            terms["rkd_d"] = self.dist_weight * _per_seed(rkd_distance_loss, s, t)
        if self.angle_weight:
            terms["rkd_a"] = self.angle_weight * _per_seed(
                lambda a, b: rkd_angle_loss(a, b, self.angle_max_batch), s, t)
        return terms


def _per_seed(loss, s, t):
    """loss(s, t) for (N, D) embeddings; for K seeds' slices (tuples of (N, D)) the (K,) losses."""
    return loss(s, t) if isinstance(s, torch.Tensor) else torch.stack([loss(a, b) for a, b in zip(s, t)])


@torch.no_grad()
def embed(model, x, layer: str = "features", batch_size: int = 2048) -> torch.Tensor:
    """The (N, D) embeddings of `model` at `layer` on inputs x (eval mode, `hooks.features`), float32 on the CPU."""
    return features(model, x, [layer], batch_size)[1][layer].flatten(1).float().cpu()


@torch.no_grad()
def knn_recall_at_k(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Recall@K (%) of the metric-learning papers: the share of queries whose K nearest neighbours
    (Euclidean, the query itself excluded) include one of the same label. Every sample is a query.
    embeddings (N, D), labels (N,), 1 <= k < N."""
    if embeddings.dim() != 2 or labels.dim() != 1 or len(embeddings) != len(labels):
        raise ValueError(f"knn_recall_at_k: need embeddings (N, D) and labels (N,), got {tuple(embeddings.shape)} and {tuple(labels.shape)}")
    if not 1 <= k < len(labels):
        raise ValueError(f"knn_recall_at_k: k must be in [1, N), got k={k} with N={len(labels)}")
    e = embeddings.float()
    d = torch.cdist(e, e)
    d.fill_diagonal_(float("inf"))
    nn_idx = d.topk(k, dim=1, largest=False).indices  # (N, k)
    hit = (labels[nn_idx] == labels[:, None]).any(1)
    return 100.0 * hit.float().mean().item()
