"""The exact 1-D toy of the divergences chapter: a bimodal teacher, a unimodal student.

The teacher is a two-component Gaussian mixture discretised on a grid of V
points (a "vocabulary" with an order); the student is one discretised
Gaussian with a learnable mean and log-width. Fitting the student by each
token-level divergence of ``kdlib.lm.methods.divergence`` shows, exactly and
without sampling noise, what each one finds: forward KL covers both modes
(mode-averaging), reverse KL picks one (mode-seeking).
"""

from __future__ import annotations

import torch

from kdlib.lm.methods import divergence

__all__ = ["grid", "bimodal_logits", "gaussian_logits", "fit_gaussian", "fit_gaussian_to"]


def grid(n=241, lo=-6.0, hi=6.0):
    """The V points of the 1-D 'vocabulary': (V,)."""
    return torch.linspace(lo, hi, n)


def bimodal_logits(x, means=(-2.0, 2.0), std=0.6, weights=(0.5, 0.5)):
    """Log-probabilities of a discretised two-component Gaussian mixture on x: (V,)."""
    comps = [torch.tensor(w).log() - 0.5 * ((x - m) / std) ** 2 for m, w in zip(means, weights)]
    return torch.logsumexp(torch.stack(comps), 0).log_softmax(-1)


def gaussian_logits(x, mean, log_std):
    """Logits of one discretised Gaussian on x: (V,)."""
    return -0.5 * ((x - mean) / log_std.exp()) ** 2


def fit_gaussian(teacher_logits, x, name, beta=0.5, alpha=0.1, mean=0.5, std=0.5, steps=600, lr=0.05):
    """Fit the unimodal student to the teacher by minimising ``divergence(name)`` with Adam.

    Starts at (mean, std); the small positive mean breaks the symmetry so that a
    mode-seeking divergence has a mode to fall into. Returns a dict: final mean,
    std, the student's log-probabilities (V,), and the loss per step.
    """
    def loss_fn(student_logits, teacher_logits):  # one "token": (1, 1, V) each
        return divergence(name, student_logits[None, None], teacher_logits[None, None], None, beta, alpha)
    return fit_gaussian_to(loss_fn, teacher_logits, x, mean, std, steps, lr)


def fit_gaussian_to(loss_fn, teacher_logits, x, mean=0.5, std=0.5, steps=600, lr=0.05):
    """`fit_gaussian` for any ``loss_fn(student_logits (V,), teacher_logits (V,)) -> scalar``
    (SinKD's transport losses use it): same student, start and optimiser."""
    mean = torch.tensor(float(mean), requires_grad=True)
    log_std = torch.tensor(float(std)).log().requires_grad_()
    opt = torch.optim.Adam([mean, log_std], lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(gaussian_logits(x, mean, log_std), teacher_logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        student = gaussian_logits(x, mean, log_std).log_softmax(-1)
    return dict(mean=mean.item(), std=log_std.exp().item(), logprobs=student, losses=losses)
