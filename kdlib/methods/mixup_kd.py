"""Understanding the Role of Mixup in Knowledge Distillation (Choi, Jeon, Shukla & Turaga, WACV 2023).

Three pieces, all following the official code (hchoi71/MIX-KD):

* `mixup_batch`: full mixup (FMU, every sample mixed) or partial mixup (PMU, only a fraction of
  the batch mixed, the rest kept as is), lambda ~ Beta(a, a) per sample (`helper/loops_mixstd.py`);
* `MixupKD`: the student's loss on the mixed batch, which teacher and student both see:
  ce_weight * CE(y_mix, p_s) + kd_weight * KD, where KD is either Hinton's T^2 KL at a fixed T or
  the std-scaled KL of `std_kd_loss` (MIXSTD: the CE then also uses the student's std-scaled
  logits, as the code does);
* `MixupCE` and `fit_mixup_teacher`: a teacher trained with full mixup, for the zoo
  (``zoo.get(spec, fit=fit_mixup_teacher)``).

Mixup draws random numbers, so these methods own a generator seeded at construction and override
`forward`: `kdlib.batched.train_seeds` then trains them one seed at a time (see why_sequential).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import kd_loss, soft_cross_entropy, std_kd_loss, std_scale
from ..method import Method


def mixup_batch(x, y, num_classes, generator, beta_a=1.0, mix_fraction=1.0):
    """Mix a batch with a shuffled copy of itself: x~ = lam x + (1 - lam) x[perm], y~ likewise.

    x (N, ...), y (N,) class indices -> x~ (N, ...), y~ (N, C) soft labels, lam (N,).
    lam ~ Beta(beta_a, beta_a) per sample; mix_fraction < 1 is partial mixup: lam is set to 1 (no
    mixing) for all but round(mix_fraction * N) samples, chosen without replacement. (The official
    PMU draws the kept indices *with* replacement, so with partmixup = 0.9 about 41 %, not 10 %,
    of a batch stays mixed; the book takes the stated fraction: see the chapter's deviations.)
    All draws come from `generator` (CPU), so a seed fixes the whole sequence of batches.
    """
    if not 0.0 <= mix_fraction <= 1.0:
        raise ValueError(f"mixup_batch: mix_fraction must be in [0, 1], got {mix_fraction}")
    n = x.shape[0]
    lam = beta_draws(n, beta_a, generator)
    if mix_fraction < 1.0:
        keep = torch.randperm(n, generator=generator)[: n - round(mix_fraction * n)]
        lam[keep] = 1.0
    perm = torch.randperm(n, generator=generator)
    lam, perm = lam.to(x.device), perm.to(x.device)
    shape = (n,) + (1,) * (x.dim() - 1)
    x_mix = lam.view(shape) * x + (1 - lam.view(shape)) * x[perm]
    y_hot = F.one_hot(y, num_classes).float()
    y_mix = lam[:, None] * y_hot + (1 - lam[:, None]) * y_hot[perm]
    return x_mix, y_mix, lam


def beta_draws(n, a, generator):
    """n draws of Beta(a, a) from `generator`: uniform for a = 1; otherwise torch's Beta sampler
    under a global seed taken from the generator (Beta.sample has no generator argument)."""
    if a <= 0:
        raise ValueError(f"mixup: beta_a must be > 0, got {a}")
    if a == 1.0:
        return torch.rand(n, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Beta(float(a), float(a)).sample((n,))


class MixupKD(Method):
    """KD on (fully or partially) mixed batches, with a fixed T or std-scaled logits.

    loss = ce_weight * CE(y~, p_s) + kd_weight * KD(x~), teacher and student both fed x~.
    temperature: a number (Hinton's T^2 KL(p_t^T || p_s^T)) or "std" (the official MIXSTD loss:
    KL of std-scaled logits, no T^2, and the CE on the student's std-scaled logits too).
    mix: "none", "full" (FMU) or "partial" (PMU: a fraction `mix_fraction` of each batch mixed).
    Defaults are the official `train_student_MIXSTD.py`: gamma 0.1, alpha 0.9, beta_a 1,
    partmixup 0.9 (so 10 % mixed).
    """

    def __init__(self, mix="full", temperature=4.0, ce_weight=0.1, kd_weight=0.9, beta_a=1.0,
                 mix_fraction=0.1, num_classes=10, seed=0):
        super().__init__()
        if mix not in ("none", "full", "partial"):
            raise ValueError(f"MixupKD: mix must be 'none', 'full' or 'partial', got {mix!r}")
        if temperature != "std" and not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"MixupKD: temperature must be a positive number or 'std', got {temperature!r}")
        self.mix, self.temperature = mix, temperature
        self.ce_weight, self.kd_weight, self.beta_a = ce_weight, kd_weight, beta_a
        self.num_classes = num_classes
        self.fraction = {"none": 0.0, "full": 1.0, "partial": mix_fraction}[mix]
        self.generator = torch.Generator().manual_seed(seed)

    def mixed(self, x, y):
        """The batch this method trains on: (x~, y~ soft labels)."""
        if self.fraction == 0.0:
            return x, F.one_hot(y, self.num_classes).float()
        x_mix, y_mix, _ = mixup_batch(x, y, self.num_classes, self.generator, self.beta_a, self.fraction)
        return x_mix, y_mix

    def loss_terms(self, student_logits, teacher_logits, y_soft):
        """Pure: the weighted terms from the two models' logits on the mixed batch and its soft labels."""
        if self.temperature == "std":
            ce = soft_cross_entropy(std_scale(student_logits), y_soft)
            kd = std_kd_loss(student_logits, teacher_logits)
        else:
            ce = soft_cross_entropy(student_logits, y_soft)
            kd = kd_loss(student_logits, teacher_logits, self.temperature)
        return {"ce": self.ce_weight * ce, "kd": self.kd_weight * kd}

    def forward(self, student, teacher, batch):
        if teacher is None:
            raise ValueError("MixupKD needs a teacher (teacher=None)")
        x, y = batch[0], batch[1]
        x_mix, y_mix = self.mixed(x, y)
        with torch.no_grad():
            teacher_logits = teacher(x_mix)
        return self.loss_terms(student(x_mix), teacher_logits, y_mix)


class MixupCE(Method):
    """Plain mixup training (Zhang et al. 2018): CE(y~, p(x~)) on fully mixed batches. The mixup teacher."""

    needs_teacher = False

    def __init__(self, beta_a=1.0, num_classes=10, seed=0):
        super().__init__()
        self.beta_a, self.num_classes = beta_a, num_classes
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, student, teacher, batch):
        x_mix, y_mix, _ = mixup_batch(batch[0], batch[1], self.num_classes, self.generator, self.beta_a)
        return {"ce": soft_cross_entropy(student(x_mix), y_mix)}
