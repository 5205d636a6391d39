"""Born-Again Neural Networks (Furlanello, Lipton, Tschannen, Itti & Anandkumar, ICML 2018).

A born-again student has its teacher's architecture. Generation 0 is trained on labels;
generation k is trained to match the output distribution of generation k - 1. The paper's
two ablations ask *which part* of the teacher's output helps:

* CWTM keeps only the teacher's confidence (a per-sample weight on the label loss);
* DKPP keeps the teacher's argmax and the *values* of the other entries, but permutes them,
  destroying which classes the teacher thinks are similar.

No official code exists. The unofficial `nocotan/born_again_neuralnet` mixes labels and KD
(alpha = 0.2, T = 20), which is not the paper's objective; here the default is the paper's
plain BAN loss: cross-entropy to the previous generation's softmax at T = 1, no label term.

Every seed of a born-again chain has its own teacher (its previous generation), while
`kdlib.batched.train_seeds` takes one teacher for all seeds. Without augmentation a frozen
teacher's targets never change, so `train_generation` computes each seed's targets once
(`born_again_targets`) and lets them ride in the data in place of the labels (`TargetCE`, no
teacher at training time): the K seeds of a generation then train as one batched computation.
With augmentation (the paper profile) each seed trains alone with its own teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cross_entropy, cwtm_weights, dkpp_permute, soft_cross_entropy, target_mass_cross_entropy
from .base import CE, Method


class BornAgain(Method):
    """BAN: CE(p_{k-1}(x), p_k(x)) = -sum_c p_{k-1,c} log p_{k,c}, the previous generation as target.

    temperature = 1 is the paper's setting. label_weight > 0 adds the label CE (the paper's
    "BAN+L" variant); the default 0 is the plain born-again objective.
    """

    def __init__(self, temperature=1.0, label_weight=0.0):
        super().__init__()
        self.temperature, self.label_weight = temperature, label_weight

    def terms_from_logits(self, student_logits, teacher_logits, target):
        soft_target = F.softmax(teacher_logits.detach().float() / self.temperature, dim=-1)
        terms = {"ban": soft_cross_entropy(student_logits / self.temperature, soft_target)}
        if self.label_weight > 0:
            terms["ce"] = self.label_weight * cross_entropy(student_logits, target)
        return terms


class CWTM(Method):
    """Confidence-Weighted by Teacher Max: sum_s w_s CE(y_s, p_s), w_s = max p_t(x_s) / sum_u max p_t(x_u)."""

    def terms_from_logits(self, student_logits, teacher_logits, target):
        weights = cwtm_weights(teacher_logits)
        per_sample = F.cross_entropy(student_logits.float(), target, reduction="none")
        return {"cwtm": (weights * per_sample).sum()}


class DKPP(Method):
    """Dark Knowledge with Permuted Predictions: CE to the teacher's softmax with its non-argmax
    entries randomly permuted (a fresh permutation per sample and step, from the global stream
    that `train` seeds)."""

    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student, teacher, batch):
        x = batch[0]
        student_logits = student(x)
        with torch.no_grad():
            target = dkpp_permute(F.softmax(teacher(x).float() / self.temperature, dim=-1))
        return {"dkpp": soft_cross_entropy(student_logits / self.temperature, target)}


class TargetCE(Method):
    """BAN, CWTM or DKPP with the teacher's part precomputed: `target` is (N, C), built by
    `born_again_targets` from each seed's own frozen teacher, and the loss is
    `target_mass_cross_entropy(student_logits / T, target)`. No teacher at training time."""

    needs_teacher = False

    def __init__(self, temperature=1.0):
        super().__init__()
        self.temperature = temperature

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"target_ce": target_mass_cross_entropy(student_logits / self.temperature, target)}


KINDS = ("ce", "ban", "cwtm", "dkpp")


@torch.no_grad()
def born_again_targets(teacher, x, y, kind, temperature=1.0, generator=None):
    """(N, C) targets for `TargetCE` from a frozen teacher's logits on x (computed once, in eval mode).

    'ban':  softmax(z_t / T), the BAN target;
    'cwtm': max_c softmax(z_t)_c * onehot(y), the label weighted by the teacher's confidence (T = 1);
    'dkpp': the BAN target with its non-argmax entries permuted, one permutation per sample drawn
            once from `generator` (the student sees one fixed, scrambled teacher for the whole run).
    """
    from ..train import teacher_logits  # here, not at import: kdlib.train imports kdlib.methods

    logits = teacher_logits(teacher, x).float()
    if kind == "cwtm":
        confidence = F.softmax(logits, dim=-1).amax(-1, keepdim=True)
        return confidence * F.one_hot(y, logits.shape[-1]).float()
    probs = F.softmax(logits / temperature, dim=-1)
    if kind == "ban":
        return probs
    if kind == "dkpp":
        return dkpp_permute(probs, generator)
    raise ValueError(f"born_again_targets: kind must be 'ban', 'cwtm' or 'dkpp', got {kind!r}")


def train_generation(make_student, kind, teachers, data_for_seed, seeds, *, temperature=1.0, augment=None,
                     **recipe):
    """One student per seed, each taught by its own teacher; returns the students in the order of `seeds`.

    kind: 'ce' (generation 0, labels only; teachers=None), 'ban', 'cwtm' or 'dkpp'.
    teachers: seed -> that seed's frozen teacher (its previous generation).
    make_student(seed), data_for_seed(seed) -> (x, y) and recipe: as `kdlib.batched.train_seeds`.
    Without augmentation the targets are computed once per seed (`born_again_targets`, the DKPP
    permutation from ``torch.Generator().manual_seed(seed)``) and the seeds train as one batched
    computation with `TargetCE`. With augmentation the teacher must see every augmented batch:
    one `train` per seed with `BornAgain`, `CWTM` or `DKPP` (which then redraws its permutation
    every step).
    """
    from ..batched import train_seeds  # here, not at import: kdlib.batched imports kdlib.methods

    if kind not in KINDS:
        raise ValueError(f"train_generation: kind must be one of {KINDS}, got {kind!r}")
    seeds = list(seeds)
    if kind == "ce":
        return train_seeds(make_student, CE(), data_for_seed, seeds, augment=augment, **recipe)[0]
    if augment is None:
        def with_targets(seed):
            x, y = data_for_seed(seed)[:2]
            g = torch.Generator().manual_seed(seed)
            return x, born_again_targets(teachers[seed], x, y, kind, temperature, g).to(y.device)

        return train_seeds(make_student, TargetCE(1.0 if kind == "cwtm" else temperature), with_targets, seeds,
                           **recipe)[0]
    method = {"ban": BornAgain(temperature), "cwtm": CWTM(), "dkpp": DKPP(temperature)}[kind]
    return [train_seeds(make_student, method, data_for_seed, [s], teacher=teachers[s], augment=augment,
                        **recipe)[0][0] for s in seeds]


def generations(teacher, make_student, data, n, method=None, **train_kwargs):
    """Born-again sequence: [teacher, student_1, ..., student_n], student_k taught by student_{k-1}.

    make_student(k) -> a fresh, untrained model (its init is the caller's choice, e.g. seeded by k);
    method defaults to `BornAgain()`; train_kwargs go to `kdlib.train.train`.
    """
    from ..train import train  # here, not at import: kdlib.train imports kdlib.methods

    chain = [teacher]
    for k in range(1, n + 1):
        student = make_student(k)
        train(student, method or BornAgain(), data, teacher=chain[-1], **train_kwargs)
        chain.append(student)
    return chain


@torch.no_grad()
def ensemble_logits(models, x):
    """BAN ensemble: log of the mean of the models' softmax outputs, (N, C) (argmax = ensemble vote)."""
    from ..train import predict_logits

    probs = torch.stack([predict_logits(m, x).softmax(-1) for m in models]).mean(0)
    return probs.clamp_min(1e-12).log()
