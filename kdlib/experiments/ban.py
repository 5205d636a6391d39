"""Born-Again Networks' training drivers: a generation of students, each taught by its own teacher, and chains.

The loss-side pieces (BornAgain, CWTM, DKPP, TargetCE) are in `kdlib.methods.ban`; see its docstring
for why a generation's targets are computed once and ride in the data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..batched import train_seeds
from ..losses import dkpp_permute
from ..method import CE
from ..methods.ban import CWTM, DKPP, BornAgain, TargetCE
from ..train import predict_logits, teacher_logits, train


KINDS = ("ce", "ban", "cwtm", "dkpp")


@torch.no_grad()
def born_again_targets(teacher, x, y, kind, temperature=1.0, generator=None):
    """(N, C) targets for `TargetCE` from a frozen teacher's logits on x (computed once, in eval mode).

    'ban':  softmax(z_t / T), the BAN target;
    'cwtm': max_c softmax(z_t)_c * onehot(y), the label weighted by the teacher's confidence (T = 1);
    'dkpp': the BAN target with its non-argmax entries permuted, one permutation per sample drawn
            once from `generator` (the student sees one fixed, scrambled teacher for the whole run).
    """

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

    chain = [teacher]
    for k in range(1, n + 1):
        student = make_student(k)
        train(student, method or BornAgain(), data, teacher=chain[-1], **train_kwargs)
        chain.append(student)
    return chain


@torch.no_grad()
def ensemble_logits(models, x):
    """BAN ensemble: log of the mean of the models' softmax outputs, (N, C) (argmax = ensemble vote)."""

    probs = torch.stack([predict_logits(m, x).softmax(-1) for m in models]).mean(0)
    return probs.clamp_min(1e-12).log()
