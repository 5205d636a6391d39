"""Random Teachers are Good Teachers (Sarnthein, Bachmann, Anagnostidis & Hofmann, ICML 2023).

A teacher at random initialisation, frozen and never trained; a student of the same architecture
distils its DINO-head outputs on unlabelled inputs (no augmentation); the student's *encoder* is
then judged by a linear probe. Pieces:

* `DinoNet`: an MLP encoder (no batch norm) and a DINO head: MLP -> L2-normalised bottleneck ->
  weight-normalised linear layer (gain fixed to 1) with no bias, as `dinopl/core.py:DINOHead`.
* `RandomTeacherDistill`: the method; its one term is `dino_distill_loss` against a teacher
  centred by a fixed vector (see `fit_center`).
* `locality_init`: the paper's parameter interpolation between teacher and a fresh draw.
* `ridge_probe`: a closed-form linear probe (one-vs-rest ridge, penalty chosen on validation).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import features
from ..losses import dino_distill_loss
from ..method import Method


class DinoNet(nn.Module):
    """Encoder MLP ``in_dim -> widths`` (ReLU, no batch norm) and a DINO head.

    The head: Linear-GELU-Linear-GELU-Linear to `bottleneck`, L2 normalisation, then a linear
    layer to `out_dim` whose rows are L2-normalised (weight norm with g = 1, DINO's `last_layer`).
    `forward` returns the head's K = out_dim outputs (cosines in [-1, 1]); `embed` the encoder's.
    Weights: PyTorch's default (Kaiming-uniform) initialisation, drawn from `seed`.
    """

    def __init__(self, in_dim: int, widths=(256, 256), head_hidden: int = 512, bottleneck: int = 64,
                 out_dim: int = 1024, seed: int = 0):
        super().__init__()
        if not widths:
            raise ValueError("DinoNet: widths must name at least one encoder layer")
        g = torch.random.fork_rng(devices=[])
        with g:  # the init is a function of `seed` alone, whatever the global stream
            torch.manual_seed(seed)
            layers, d = [], in_dim
            for w in widths:
                layers += [nn.Linear(d, w), nn.ReLU()]
                d = w
            self.encoder = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(d, head_hidden), nn.GELU(), nn.Linear(head_hidden, head_hidden),
                                      nn.GELU(), nn.Linear(head_hidden, bottleneck))
            self.last = nn.Parameter(torch.empty(out_dim, bottleneck))
            nn.init.kaiming_uniform_(self.last, a=math.sqrt(5))  # nn.Linear's default
        self.embed_dim = d

    def embed(self, x):
        return self.encoder(x)

    def forward(self, x):
        z = F.normalize(self.head(self.encoder(x)), dim=-1)
        return z @ F.normalize(self.last, dim=-1).T


@torch.no_grad()
def locality_init(teacher: nn.Module, fresh: nn.Module, alpha: float) -> nn.Module:
    """theta_S = ((1 - alpha) theta_T + alpha theta~) / sqrt(alpha^2 + (1 - alpha)^2)   (the paper's Sec. 6).

    alpha = 0: the teacher itself; alpha = 1: the fresh draw. The denominator keeps the scale of
    an initialisation when the two draws are independent. Returns a new module (inputs untouched).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"locality_init: alpha must be in [0, 1], got {alpha}")
    student = copy.deepcopy(teacher)
    scale = math.sqrt(alpha**2 + (1 - alpha) ** 2)
    for p, pt, pf in zip(student.parameters(), teacher.parameters(), fresh.parameters()):
        if p.shape != pf.shape:
            raise ValueError("locality_init: teacher and fresh have different architectures")
        p.copy_(((1 - alpha) * pt + alpha * pf) / scale)
        p.requires_grad_(True)
    return student


class RandomTeacherDistill(Method):
    """Label-free distillation into a frozen random teacher: one term, `dino_distill_loss`.

    The teacher's outputs are centred by `center` (a buffer; zeros until `fit_center`). DINO keeps
    an EMA of the teacher's batch means; with a frozen teacher and fixed inputs that EMA tends to
    the mean over the training inputs, which `fit_center` sets once (our simplification). Labels
    are ignored.
    """

    def __init__(self, out_dim: int, tau_s: float = 0.1, tau_t: float = 0.04, centering: bool = True):
        super().__init__()
        self.tau_s, self.tau_t, self.centering = tau_s, tau_t, centering
        self.register_buffer("center", torch.zeros(out_dim))

    @torch.no_grad()
    def fit_center(self, teacher_logits):
        """Set the centre to the mean of the teacher's outputs on the training inputs, (N, K) -> (K,)."""
        if self.centering:
            self.center.copy_(teacher_logits.float().mean(0))
        return self

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"distill": dino_distill_loss(student_logits, teacher_logits, self.tau_s, self.tau_t, self.center)}


@torch.no_grad()
def embeddings(model: DinoNet, x, batch_size: int = 4096):
    """The encoder's features of `x`, (N, in_dim) -> (N, embed_dim), in eval mode (`hooks.features`)."""
    model.eval()
    return features(model, x, ["encoder"], batch_size)[1]["encoder"]


@torch.no_grad()
def ridge_probe(train, val, test, lambdas=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0), num_classes: int = 10):
    """Closed-form linear probe: one-vs-rest ridge on standardised features, penalty chosen on val.

    train, val, test: ``(features, labels)`` pairs, features (N, D), labels (N,) int.
    Fits W = (X^T X + lambda I)^-1 X^T Y on centred, standardised training features (the
    intercept is the mean of Y), for every lambda from one eigendecomposition; picks the lambda
    with the best validation accuracy (the smallest on ties). Returns
    ``{"acc": test accuracy in %, "val_acc": ..., "lam": lambda}``.
    """
    x, y = train[0].double(), train[1]
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mu) / sd
    t = F.one_hot(y, num_classes).double()
    t_mean = t.mean(0)
    evals, evecs = torch.linalg.eigh(z.T @ z)
    proj = evecs.T @ (z.T @ (t - t_mean))  # (D, C)
    best = None
    for lam in lambdas:
        w = evecs @ (proj / (evals.clamp_min(0) + lam)[:, None])
        scores = {}
        for name, (xs, ys) in (("val", val), ("test", test)):
            pred = (((xs.double() - mu) / sd) @ w + t_mean).argmax(-1)
            scores[name] = 100.0 * float((pred == ys).double().mean())
        if best is None or scores["val"] > best["val_acc"]:
            best = {"acc": scores["test"], "val_acc": scores["val"], "lam": float(lam)}
    return best
