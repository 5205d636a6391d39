"""HARD: Hard Augmentations for Robust Distillation (Nix, Burg & Sinz, 2023; arXiv:2305.14890).

No official code (sinzlab/HARD holds only a README). The idea, from the abstract: an augmentation
model generates inputs on which the teacher and the student *disagree*, and the student is
distilled on them. Our reading of the objective (the brief's spec; the paper's equations were not
available to check): an alternating min-max game,

    student   min_s  D(t(x), s(x)) + D(t(x^), s(x^)),                  x^ = g(x) held fixed
    augmentor max_g  D(t(x^), s(x^)) - lambda * D(t(x), t(x^)),         s held fixed

with D = T^2 KL(teacher || student) (`kd_loss`). The second term of the augmentor keeps the
teacher's own prediction on x^ close to that on x, so the augmentor cannot simply destroy the
signal: it looks for transforms the teacher is invariant to and the student is not.

Pieces: `augmentor_objective` (pure), `HARD` (the method: the student's terms from `forward`, the
augmentor's own Adam step in `backward`), `fit_shift_teacher` (a zoo `fit` for a CNN teacher
trained with random circular shifts). `HARD(mode="random")` is the control with the same two
terms but x^ a uniform random shift in the same bounds.
"""

from __future__ import annotations


import torch

from ..augment import ShiftScaleAugmentor, random_shift, shift_scale
from ..losses import kd_loss
from ..method import Method


def augmentor_objective(teacher_logits, teacher_logits_aug, student_logits_aug, lam, temperature=1.0):
    """HARD's augmentor objective (to be *maximised*), our reading of the paper's Sec. 3:

        D(t(x^), s(x^)) - lambda * D(t(x), t(x^)),   D(p, q) = T^2 KL(p || q), batchmean.

    teacher_logits (N, C) on x; teacher_logits_aug, student_logits_aug (N, C) on x^ = g(x).
    The first term: the student disagrees with the teacher on x^ (hard for the student);
    the second: the teacher's prediction on x^ stays that on x (x^ still a valid input).
    Returns a scalar; gradients reach x^ through both models (the teacher's on x is a constant).
    """
    disagreement = kd_loss(student_logits_aug, teacher_logits_aug, temperature)
    teacher_change = kd_loss(teacher_logits_aug, teacher_logits.detach(), temperature)
    return disagreement - lam * teacher_change


class HARD(Method):
    """KD on x and on a hard augmentation x^ = g(x), g a learned per-sample shift/scale.

    loss (student) = kd_weight * [T^2 KL(t(x) || s(x)) + T^2 KL(t(x^) || s(x^))] (+ ce_weight * CE).
    mode: "learned" (HARD: g is a `ShiftScaleAugmentor` trained to maximise `augmentor_objective`
    by its own Adam, one step per student step, on the same x^ the student sees) or "random" (x^ a uniform random circular shift
    in [-max_shift, max_shift]: the same terms, the plain augmentation as control).
    The augmentor is a submodule (it moves with the method), but its gradient is never left in
    `.grad`, so the training loop's optimiser (which also lists the method's parameters) skips it.
    Defaults: ours (the paper's hyperparameters were not available to check); T = 4 as the book's KD.
    """

    def __init__(self, mode="learned", temperature=4.0, kd_weight=1.0, ce_weight=0.0, lam=1.0,
                 max_shift=8.0, max_scale=1.0, aug_lr=1e-3, aug_temperature=1.0, length=40, hidden=32,
                 seed=0):
        super().__init__()
        if mode not in ("learned", "random"):
            raise ValueError(f"HARD: mode must be 'learned' or 'random', got {mode!r}")
        self.mode, self.temperature, self.kd_weight, self.ce_weight = mode, temperature, kd_weight, ce_weight
        self.lam, self.max_shift, self.aug_temperature = lam, float(max_shift), aug_temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.augmentor = ShiftScaleAugmentor(length, hidden, max_shift, max_scale, seed=seed) if mode == "learned" else None
        self.aug_opt = torch.optim.Adam(self.augmentor.parameters(), lr=aug_lr) if self.augmentor else None
        self.last_shift = torch.zeros(0)  # the augmentor's shifts on the last batch (diagnostics)
        self._objective = None  # the augmentor's objective of the current batch, stepped in `backward`

    def augment(self, x):
        """x^ for a step: a random shift, or the augmentor's output with its graph (for its own step)."""
        if self.mode == "random":
            return random_shift(x, self.generator, self.max_shift, integer=False)
        shift, scale = self.augmentor.params(x)
        self.last_shift = shift.detach()
        return shift_scale(x, shift, scale if self.augmentor.max_scale > 1 else None)

    def forward(self, student, teacher, batch):
        if teacher is None:
            raise ValueError("HARD needs a teacher (teacher=None)")
        x, y = batch[0], batch[1]
        x_aug = self.augment(x)
        with torch.no_grad():
            teacher_logits = teacher(x)
        # one forward of each model on x^ serves both players: the student's term takes the teacher's
        # logits as a constant target; the augmentor's objective differentiates through both models
        teacher_logits_aug = teacher(x_aug) if self.mode == "learned" else teacher(x_aug).detach()
        student_logits, student_logits_aug = student(x), student(x_aug)
        terms = {
            "kd": self.kd_weight * kd_loss(student_logits, teacher_logits, self.temperature),
            "kd_aug": self.kd_weight * kd_loss(student_logits_aug, teacher_logits_aug.detach(), self.temperature),
        }
        if self.ce_weight > 0:
            terms["ce"] = self.ce_weight * torch.nn.functional.cross_entropy(student_logits, y)
        self._objective = None
        if self.mode == "learned":
            self._objective = augmentor_objective(teacher_logits, teacher_logits_aug, student_logits_aug, self.lam,
                                                  self.aug_temperature)
        return terms

    def backward(self, loss, terms):
        """One ascent step of the augmentor on its objective, then the student's gradient (plain backprop)."""
        if self._objective is None:
            loss.backward()
            return
        params = list(self.augmentor.parameters())
        # the augmentor's gradient only (autograd.grad leaves every .grad alone), graph kept for the student
        grads = torch.autograd.grad(-self._objective, params, retain_graph=True)
        loss.backward()  # the student's gradient; x^ carries some into the augmentor too: discarded below
        self.aug_opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        self.aug_opt.step()
        for p in params:  # leave no .grad for the training loop's optimiser to step again
            p.grad = None
        self._objective = None

    def augmentor_step(self, student, teacher, x, teacher_logits):
        """A stand-alone ascent step of g on a batch (the same update `backward` makes; for tests and probes)."""
        x_aug = self.augment(x)
        objective = augmentor_objective(teacher_logits, teacher(x_aug), student(x_aug), self.lam, self.aug_temperature)
        params = list(self.augmentor.parameters())
        grads = torch.autograd.grad(-objective, params)
        self.aug_opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        self.aug_opt.step()
        for p in params:
            p.grad = None
