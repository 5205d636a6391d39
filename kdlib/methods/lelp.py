"""LELP: Linear Projections of Teacher Embeddings for Few-Class Distillation (Loo, Iliopoulos, Hu & Vee, 2024),
and pseudo-subclass distillation with k-means or known (oracle) subclasses (Müller et al. 2020 style).

There is no official code. The method as implemented here (the book's reading of the
paper's Sec. 3, see the chapter `notebooks/lelp.ipynb`):

1. P = I - W^+ W projects a teacher embedding h (D,) onto the null space of the
   teacher's final-layer weights W (C, D): the part of h that does not move the logits.
2. Per class c, PCA of {P h : y = c} gives the top-k directions V_c (D, k) and mean mu_c;
   a random orthonormal Q_c (k, k) mixes them so that the k directions have comparable
   variance; the scores s_c(h) = (P h - mu_c) V_c Q_c / sigma_c (sigma_c: the RMS of the
   top-k PCA scores of class c) are the pseudo-subclass scores, (N, C, k).
3. Teacher target over the C*k pseudo-subclasses: q_{c,j} = softmax(z_t / T)_c *
   softmax(s_c / beta)_j, so summing q over j gives exactly the teacher's class distribution.
4. The student has a C*k-way head, is trained with T^2 KL(q || softmax(z_s / T)) and no
   ground-truth term (the paper's alpha = 0), and predicts by summing subclass probabilities.

Without augmentation the frozen teacher's subclass targets never change, so
`train_subclass_students` computes each seed's targets once (`subclass_targets`) and trains
the seeds as one batched computation with `SubclassTargets`; with augmentation each seed
trains alone with its fitted method and the teacher in the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import capture, features
from ..losses import kd_loss, subclass_kd_loss
from ..method import Method

# ----------------------------------------------------------------------- pure tensor pieces


def null_space_projector(weight):
    """P = I - W^+ W, (D, D): the orthogonal projector onto the null space of W (C, D).

    For every h, W (P h) = 0: the projected embedding no longer changes the teacher's logits.
    """
    weight = weight.detach().double()
    eye = torch.eye(weight.shape[1], dtype=weight.dtype, device=weight.device)
    return (eye - torch.linalg.pinv(weight) @ weight).float()


def random_rotation(k, generator=None):
    """A Haar-random orthonormal (k, k) matrix: QR of a Gaussian matrix, signs fixed by diag(R)."""
    q, r = torch.linalg.qr(torch.randn(k, k, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def pseudo_subclass_targets(teacher_logits, scores, temperature, subclass_temperature):
    """q_{c,j} = softmax(z_t / T)_c * softmax(s_{c,.} / beta)_j, flattened class-major to (N, C*k).

    teacher_logits: (N, C); scores: (N, C, k). Rows sum to one, and summing over each
    class's k subclasses returns softmax(z_t / T) exactly (index c * k + j is subclass j of c).
    """
    p_class = F.softmax(teacher_logits.float() / temperature, dim=-1)
    p_sub = F.softmax(scores.float() / subclass_temperature, dim=-1)
    return (p_class.unsqueeze(-1) * p_sub).flatten(1)


def aggregate_subclass_logits(subclass_logits, num_classes):
    """(N, C*k) subclass logits -> (N, C) class log-probabilities: log sum_j softmax(z)_{c,j}."""
    log_p = F.log_softmax(subclass_logits.float(), dim=-1)
    return log_p.view(len(log_p), num_classes, -1).logsumexp(-1)


class Aggregated(nn.Module):
    """Wrap a C*k-way student so that forward(x) gives (N, C) class log-probabilities (for `evaluate`)."""

    def __init__(self, student, num_classes):
        super().__init__()
        self.student, self.num_classes = student, num_classes

    def forward(self, x):
        return aggregate_subclass_logits(self.student(x), self.num_classes)


@torch.no_grad()
def teacher_embeddings(teacher, x, layer, batch_size=1024):
    """Penultimate embeddings (N, D) of `teacher` on `x` at `layer`, in eval mode (`hooks.features`), float32."""
    return features(teacher, x, [layer], batch_size)[1][layer].flatten(1).float()


def _teacher_forward(teacher, x, layer):
    """(logits, embedding) of the frozen teacher on one batch."""
    with torch.no_grad(), capture(teacher, [layer]) as feats:
        logits = teacher(x)
        return logits, feats[layer].flatten(1).float()


# ----------------------------------------------------------------------- methods


class SubclassKD(Method):
    """Distil C*k (pseudo-)subclasses into a C*k-way student head; predict by summing subclasses.

    subclasses="kmeans": per class, k-means (scikit-learn) on the teacher's embeddings of the
      transfer set; scores s_{c,j} = -||h - m_{c,j}||^2 / (2 sigma_c^2), sigma_c^2 the mean squared
      distance of class c's points to their centroid (Subclass-Distillation-style, clusters fixed).
    subclasses="oracle": the batch carries the true subclass index (x, y, sub); the target is
      the one-hot subclass y * k + sub, trained with cross-entropy (an upper reference, not KD).
    label_weight: weight of a cross-entropy on the aggregated class prediction (paper: 0).
    Call `fit(teacher, x, y)` on the transfer set before training (not needed for the oracle).
    """

    def __init__(self, num_classes, subclasses=5, temperature=4.0, subclass_temperature=1.0,
                 label_weight=0.0, embedding_layer="features", mode="kmeans", seed=0):
        super().__init__()
        if mode not in ("kmeans", "oracle"):
            raise ValueError(f"SubclassKD: mode must be 'kmeans' or 'oracle', got {mode!r}")
        self.num_classes, self.k, self.mode, self.seed = num_classes, subclasses, mode, seed
        self.temperature, self.subclass_temperature = temperature, subclass_temperature
        self.label_weight, self.embedding_layer = label_weight, embedding_layer

    def fit(self, teacher, x, y):
        """Fix the per-class k-means centroids (C, k, D) on the teacher's embeddings of (x, y)."""
        from sklearn.cluster import KMeans

        emb = teacher_embeddings(teacher, x, self.embedding_layer)
        centroids, spread = [], []
        for c in range(self.num_classes):
            e = emb[y.to(emb.device) == c].cpu().double().numpy()
            km = KMeans(n_clusters=self.k, n_init=10, random_state=self.seed).fit(e)
            centroids.append(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
            spread.append(float(km.inertia_) / len(e))
        self.register_buffer("centroids", torch.stack(centroids).to(emb.device))
        self.register_buffer("spread", torch.tensor(spread, device=emb.device).clamp_min(1e-8))
        return self

    def scores(self, emb):
        """(N, D) teacher embeddings -> (N, C, k) pseudo-subclass scores."""
        d2 = (emb[:, None, None, :] - self.centroids[None]).pow(2).sum(-1)  # (N, C, k)
        return -d2 / (2 * self.spread[None, :, None])

    def targets(self, teacher, x):
        teacher_logits, emb = _teacher_forward(teacher, x, self.embedding_layer)
        return pseudo_subclass_targets(teacher_logits, self.scores(emb), self.temperature, self.subclass_temperature)

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        student_logits = student(x)  # (N, C*k)
        if self.mode == "oracle":
            terms = {"ce_sub": F.cross_entropy(student_logits, y * self.k + batch[2])}
        else:
            q = self.targets(teacher, x)
            terms = {"kd_sub": subclass_kd_loss(student_logits, q, self.temperature)}
        if self.label_weight:
            terms["ce"] = self.label_weight * F.nll_loss(self.predict(student, x, student_logits), y)
        return terms

    def predict(self, student, x, student_logits=None):
        logits = student(x) if student_logits is None else student_logits
        return aggregate_subclass_logits(logits, self.num_classes)


class LELP(SubclassKD):
    """LELP (Loo et al. 2024): pseudo-subclasses from rotated top-k PCA directions of the teacher's
    null-space-projected embeddings, per class (module docstring, steps 1-4). `fit` before training.

    fc: the teacher's final linear layer (its weight W is (C, D)); if None, `fit` uses teacher.fc.
    """

    def __init__(self, num_classes, subclasses=5, temperature=4.0, subclass_temperature=1.0,
                 label_weight=0.0, embedding_layer="features", fc=None, seed=0):
        super().__init__(num_classes, subclasses, temperature, subclass_temperature, label_weight,
                         embedding_layer, mode="kmeans", seed=seed)
        self._fc_name = fc

    def fit(self, teacher, x, y):
        """Fix P (D, D), the class means (C, D), the rotated directions (C, D, k) and scales (C,)."""
        fc = dict(teacher.named_modules())[self._fc_name or "fc"]
        emb = teacher_embeddings(teacher, x, self.embedding_layer)
        proj = null_space_projector(fc.weight).to(emb.device)
        z = emb @ proj  # P is symmetric
        g = torch.Generator().manual_seed(self.seed)
        means, dirs, scales = [], [], []
        for c in range(self.num_classes):
            zc = z[y.to(z.device) == c]
            mu = zc.mean(0)
            _, s, vh = torch.linalg.svd(zc - mu, full_matrices=False)
            if len(s) < self.k:
                raise ValueError(f"LELP: class {c} has only {len(s)} PCA directions, fewer than k={self.k}")
            rotation = random_rotation(self.k, g).to(z.device)
            means.append(mu)
            dirs.append(vh[: self.k].T @ rotation)  # (D, k)
            scales.append((s[: self.k].pow(2).mean() / max(len(zc) - 1, 1)).sqrt())
        self.register_buffer("projector", proj)
        self.register_buffer("means", torch.stack(means))
        self.register_buffer("directions", torch.stack(dirs))
        self.register_buffer("scales", torch.stack(scales).clamp_min(1e-8))
        return self

    def scores(self, emb):
        centred = (emb @ self.projector)[:, None, :] - self.means[None]  # (N, C, D)
        return torch.einsum("ncd,cdk->nck", centred, self.directions) / self.scales[None, :, None]


class EmbeddingMSE(Method):
    """KD plus a penultimate-embedding regression: ||A h_s - h_t||^2 (FitNets-style, at the last layer).

    A (student_dim -> teacher_dim) is a linear projector trained with the student. `alpha`
    weighs KD as in `KD` (1: no ground truth, like the other distillers here); `weight` the MSE
    (mean over embedding dimensions and samples).
    """

    def __init__(self, student_dim, teacher_dim, temperature=4.0, alpha=1.0, weight=1.0,
                 student_layer="features", teacher_layer="features"):
        super().__init__()
        self.projector = nn.Linear(student_dim, teacher_dim)
        self.temperature, self.alpha, self.weight = temperature, alpha, weight
        self.student_layer, self.teacher_layer = student_layer, teacher_layer

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        with capture(student, [self.student_layer]) as feats:
            student_logits = student(x)
            h_s = feats[self.student_layer].flatten(1)
        teacher_logits, h_t = _teacher_forward(teacher, x, self.teacher_layer)
        terms = {
            "kd": self.alpha * kd_loss(student_logits, teacher_logits, self.temperature),
            "emb": self.weight * F.mse_loss(self.projector(h_s).float(), h_t),
        }
        if self.alpha < 1:
            terms["ce"] = (1 - self.alpha) * F.cross_entropy(student_logits, y)
        return terms


class SubclassTargets(Method):
    """`SubclassKD`'s loss with the targets precomputed: `target` is (N, C*k), the teacher's
    pseudo-subclass distribution q (or the one-hot true subclass for the oracle, with T = 1:
    then the loss is the subclass cross-entropy). T^2 KL(q || softmax(z_s / T)); no teacher
    at training time, so the seeds of a recipe train as one batched computation."""

    needs_teacher = False

    def __init__(self, temperature=4.0):
        super().__init__()
        self.temperature = temperature

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"kd_sub": subclass_kd_loss(student_logits, target, self.temperature)}
