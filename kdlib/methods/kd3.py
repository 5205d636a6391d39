"""Distribution Shift Matters for Knowledge Distillation with Webly Collected Images (Tang et al., ICCV 2023).

KD^3 ("Knowledge Distillation between Different Distributions") distils a teacher into a student on a
transfer set collected from the web, whose distribution differs from the teacher's training data. Its
three parts (abstract, checked): (1) dynamic instance selection by the *combined* predictions of the
teacher and the student; (2) alignment of the weighted features and of the classifier parameters of
the two networks; (3) MixDistribution, which perturbs the data into a new distribution, and a
contrastive instance alignment between the perturbed and the clean views.

The method section could not be read offline (only the abstract and introduction are stored), so every
equation below is the book's reading of the abstract; the chapter's Deviations say so. Pure functions
first, then the web transfer set of the MNIST-1D chapter, then the Method.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import capture
from ..method import Method

# ---------------------------------------------------------------- (1) instance selection


def combined_probs(student_logits, teacher_logits, teacher_weight: float):
    """p = w_T softmax(z_T) + (1 - w_T) softmax(z_S): the teacher's and the student's combined prediction.

    (N, C) logits twice -> (N, C) probabilities. No gradient (selection is a weighting, not a target).
    """
    if not 0.0 <= teacher_weight <= 1.0:
        raise ValueError(f"combined_probs: teacher_weight must be in [0, 1], got {teacher_weight}")
    with torch.no_grad():
        return teacher_weight * teacher_logits.softmax(-1) + (1 - teacher_weight) * student_logits.softmax(-1)


def selection_weights(student_logits, teacher_logits, teacher_weight: float, threshold: float):
    """KD^3 part 1 (our reading): keep instance i when max_c p_ic >= threshold; its weight is that confidence.

    p is `combined_probs`: a confident teacher whose student disagrees gives a flat p and is dropped, so
    the kept instances are those both networks find confidently in-distribution. Returns (N,) weights in
    [0, 1], zero for dropped instances, no gradient.
    """
    conf = combined_probs(student_logits, teacher_logits, teacher_weight).max(-1).values
    return conf * (conf >= threshold).to(conf.dtype)


def teacher_weight_at(epoch: int, epochs: int | None, final: float) -> float:
    """The teacher's share of the combined prediction: 1 at the first epoch, `final` at the last (linear).

    The student's say grows as it learns (the "dynamic" of the selection; our reading)."""
    if not epochs or epochs <= 1:
        return final
    return 1.0 - (1.0 - final) * min(epoch, epochs - 1) / (epochs - 1)


def _weighted_mean(per_instance, weights):
    """sum_i w_i l_i / sum_i w_i (0 when nothing is kept): the loss of the kept instances, scale-free."""
    return (weights * per_instance).sum() / weights.sum().clamp_min(1e-12)


def weighted_kd_loss(student_logits, teacher_logits, weights, temperature: float):
    """T^2 KL(p_T^T || p_S^T) per instance, averaged with `weights` (N,): KD on the selected instances.

    (N, C) logits twice; returns a scalar. With all weights equal it is `kd_loss` (batchmean)."""
    log_p_s = F.log_softmax(student_logits / temperature, -1)
    log_p_t = F.log_softmax(teacher_logits / temperature, -1)
    per = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return temperature**2 * _weighted_mean(per, weights)


# ---------------------------------------------------------------- (2) weighted feature and classifier alignment


def weighted_feature_loss(student_features, teacher_features, weights):
    """KD^3 part 2a (our reading): sum_i w_i ||P f_S(x_i) - f_T(x_i)||^2 / (D sum_i w_i).

    student_features: (N, D) already projected to the teacher's width; teacher_features: (N, D); weights (N,).
    Returns a scalar (mean over the D dimensions, weighted mean over instances)."""
    if student_features.shape != teacher_features.shape:
        raise ValueError(f"weighted_feature_loss: shapes differ, {tuple(student_features.shape)} vs "
                         f"{tuple(teacher_features.shape)} (project the student's features first)")
    per = (student_features - teacher_features.detach()).pow(2).mean(-1)
    return _weighted_mean(per, weights)


def classifier_alignment_loss(student_weight, student_bias, teacher_weight, teacher_bias, projector_weight):
    """KD^3 part 2b (our reading): ||W_S - W_T P||_F^2 / (C d_S) + ||b_S - b_T||^2 / C.

    With P the (D_T, d_S) projector of the feature alignment, W_S = W_T P and b_S = b_T make the
    student's classifier the teacher's classifier seen through P: aligned features then give aligned
    logits. student_weight (C, d_S), teacher_weight (C, D_T), biases (C,). No gradient into the teacher."""
    target = teacher_weight.detach() @ projector_weight
    return (student_weight - target).pow(2).mean() + (student_bias - teacher_bias.detach()).pow(2).mean()


# ---------------------------------------------------------------- (3) MixDistribution and instance alignment


def mix_distribution(x, generator=None, alpha: float = 0.1, eps: float = 1e-6):
    """KD^3 part 3 (our reading, MixStyle-like): each signal takes a mix of its own and a random partner's
    statistics, x~ = sigma_mix (x - mu) / sigma + mu_mix, with mu_mix = b mu + (1 - b) mu_perm (same for
    sigma) and b ~ Beta(alpha, alpha) per instance.

    x: (N, L) signals (statistics over the L points) or (N, C, L) (per channel). Returns x~ of x's shape:
    perturbed data of a new distribution whose content (the normalised shape) is unchanged."""
    if alpha <= 0:
        raise ValueError(f"mix_distribution: alpha must be > 0, got {alpha}")
    mu = x.mean(-1, keepdim=True)
    sigma = (x.var(-1, keepdim=True) + eps).sqrt()
    n = x.shape[0]
    perm = torch.randperm(n, generator=generator).to(x.device)
    b = _beta(n, alpha, generator).to(x.device).view(n, *([1] * (x.dim() - 1)))
    mu_mix = b * mu + (1 - b) * mu[perm]
    sigma_mix = b * sigma + (1 - b) * sigma[perm]
    return sigma_mix * (x - mu) / sigma + mu_mix


def _beta(n: int, alpha: float, generator=None):
    """n draws of Beta(alpha, alpha) from a seeded generator (inverse-CDF sampling on a fine grid)."""
    grid = torch.linspace(1e-4, 1 - 1e-4, 2001, dtype=torch.float64)
    logpdf = (alpha - 1) * (grid.log() + (1 - grid).log())
    cdf = torch.cumsum((logpdf - logpdf.max()).exp(), 0)
    cdf = cdf / cdf[-1]
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return grid[torch.searchsorted(cdf, u).clamp_max(len(grid) - 1)].float()


def instance_contrastive_loss(student_embeddings, teacher_embeddings, weights, temperature: float = 0.1):
    """KD^3 part 3 (our reading): InfoNCE aligning the student's embedding of the perturbed view of x_i with
    the teacher's embedding of the clean x_i (positive) against the batch's other instances (negatives).

    (N, D) twice (L2-normalised here), weights (N,); returns the weighted mean over instances of
    -log softmax_j(<s_i, t_j> / tau)[i]."""
    s = F.normalize(student_embeddings, dim=-1)
    t = F.normalize(teacher_embeddings.detach(), dim=-1)
    logits = s @ t.T / temperature
    per = F.cross_entropy(logits, torch.arange(len(s), device=s.device), reduction="none")
    return _weighted_mean(per, weights)


# ---------------------------------------------------------------- the "web" transfer set (MNIST-1D)


def unrelated_signals(n: int, length: int = 40, seed: int = 0):
    """n signals that are no digit: half sinusoids (1-6 cycles, random phase and amplitude), half smoothed
    Gaussian noise; each standardised to mean 0, std 1 like the MNIST-1D generator's output. (n, length)."""
    g = torch.Generator().manual_seed(seed)
    n_sin = n // 2
    t = torch.linspace(0, 1, length)
    freq = 1 + 5 * torch.rand(n_sin, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n_sin, 1, generator=g)
    sines = (0.5 + torch.rand(n_sin, 1, generator=g)) * torch.sin(2 * math.pi * freq * t + phase)
    noise = torch.randn(n - n_sin, 1, length + 4, generator=g)
    noise = F.avg_pool1d(noise, 5, stride=1).squeeze(1)  # mildly smoothed: no digit, but not white either
    x = torch.cat([sines, noise])
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)


def web_transfer_set(shifted_x, n_unrelated: int, seed: int = 0):
    """The chapter's webly collected set: shifted digits plus unrelated signals, shuffled; no labels.

    shifted_x: (N, L) signals of a shifted generator (their labels are never passed here).
    Returns (x, y, is_unrelated): y is all -1 (a guard: any use of a label fails loudly in cross-entropy)."""
    if n_unrelated < 0:
        raise ValueError(f"web_transfer_set: n_unrelated must be >= 0, got {n_unrelated}")
    other = unrelated_signals(n_unrelated, shifted_x.shape[1], seed=seed)
    x = torch.cat([shifted_x.float(), other])
    is_unrelated = torch.cat([torch.zeros(len(shifted_x), dtype=torch.bool), torch.ones(n_unrelated, dtype=torch.bool)])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order], torch.full((len(x),), -1, dtype=torch.long), is_unrelated[order]


# ---------------------------------------------------------------- the Method


class KD3(Method):
    """KD^3: weighted KD on the selected instances + weighted feature and classifier alignment +
    MixDistribution's contrastive instance alignment. Trained on unlabelled transfer data only.

    select=False keeps every instance with weight 1 (the ablation "without instance selection");
    feature_weight = classifier_weight = 0 removes the alignment; mix_weight = 0 removes MixDistribution.
    The projector P (student_dim -> teacher_dim, no bias) is the method's own trainable part.
    """

    def __init__(self, student_dim: int = 100, teacher_dim: int = 125, temperature: float = 4.0,
                 threshold: float = 0.5, final_teacher_weight: float = 0.5, select: bool = True,
                 feature_weight: float = 1.0, classifier_weight: float = 1.0, mix_weight: float = 0.1,
                 mix_alpha: float = 0.1, contrast_temperature: float = 0.1, layer: str = "features",
                 classifier: str = "fc", teacher_layer: str | None = None, teacher_classifier: str | None = None):
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"KD3: threshold must be in [0, 1], got {threshold}")
        self.temperature, self.threshold, self.final_teacher_weight = temperature, threshold, final_teacher_weight
        self.select = select
        self.feature_weight, self.classifier_weight, self.mix_weight = feature_weight, classifier_weight, mix_weight
        self.mix_alpha, self.contrast_temperature = mix_alpha, contrast_temperature
        self.layer, self.classifier = layer, classifier
        self.teacher_layer, self.teacher_classifier = teacher_layer or layer, teacher_classifier or classifier
        self.projector = nn.Linear(student_dim, teacher_dim, bias=False)
        self.generator = torch.Generator().manual_seed(0)  # MixDistribution's draws (reseeded by `reseed`)

    def reseed(self, seed: int):
        """Seed MixDistribution's draws (one stream per training seed)."""
        self.generator.manual_seed(seed)
        return self

    def teacher_weight(self) -> float:
        return teacher_weight_at(self.epoch, self.epochs, self.final_teacher_weight)

    def weights(self, student_logits, teacher_logits):
        if not self.select:
            return torch.ones(len(student_logits), device=student_logits.device)
        return selection_weights(student_logits, teacher_logits, self.teacher_weight(), self.threshold)

    def forward(self, student, teacher, batch):
        if teacher is None:
            raise ValueError("KD3 needs a teacher (teacher=None)")
        x = batch[0]
        with torch.no_grad(), capture(teacher, [self.teacher_layer]) as th:
            t_logits = teacher(x)
            t_feat = th[self.teacher_layer].flatten(1)
        with capture(student, [self.layer]) as sh:
            s_logits = student(x)
            s_feat = sh[self.layer].flatten(1)
        w = self.weights(s_logits, t_logits)
        terms = {"kd": weighted_kd_loss(s_logits, t_logits, w, self.temperature)}
        if self.feature_weight:
            terms["feat"] = self.feature_weight * weighted_feature_loss(self.projector(s_feat), t_feat, w)
        if self.classifier_weight:
            s_fc = student.get_submodule(self.classifier)
            t_fc = teacher.get_submodule(self.teacher_classifier)
            terms["cls"] = self.classifier_weight * classifier_alignment_loss(
                s_fc.weight, s_fc.bias, t_fc.weight, t_fc.bias, self.projector.weight)
        if self.mix_weight:
            x_mix = mix_distribution(x, self.generator, self.mix_alpha)
            with capture(student, [self.layer]) as sh:
                student(x_mix)
                s_mix = sh[self.layer].flatten(1)
            terms["mix"] = self.mix_weight * instance_contrastive_loss(
                self.projector(s_mix), t_feat, w, self.contrast_temperature)
        return terms


@torch.no_grad()
def kept_share(student, teacher, x, teacher_weight: float, threshold: float, batch_size: int = 2048):
    """Which instances the selection keeps with this student and teacher: (N,) bool (weight > 0)."""
    student.eval()
    teacher.eval()
    keep = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        keep.append(selection_weights(student(xb), teacher(xb), teacher_weight, threshold) > 0)
    return torch.cat(keep)
