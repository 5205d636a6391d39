"""Differentiable 1-D augmentations: a circular shift/scale of signals and a learned augmentor.

Used by the HARD chapter (Nix, Burg & Sinz, 2023), whose augmentor is a spatial transformer
whose parameters are trained to make the teacher and the student disagree. Here the signals
are MNIST-1D's (N, 40) and the transform is the 1-D analogue of an affine spatial transformer:
a translation by `shift` samples and a dilation by `scale` about the signal's centre.

Padding is **circular**: MNIST-1D's own generator translates its templates with a circular roll
(`mnist1d.transform.translate`), so a circular shift keeps every sample of the signal and stays
close to the data's own kind of variation, and an integer shift is exactly ``torch.roll``
(tested). Fractional positions are read by linear interpolation between the two neighbouring
samples, written out directly (gather + lerp) rather than through ``grid_sample``, whose padding
modes have no circular option; the gradient with respect to shift and scale flows through the
interpolation weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def shift_scale(x, shift, scale=None):
    """Circularly shift (and dilate) 1-D signals, differentiably in `shift` and `scale`.

    x: (N, L) or (N, 1, L). shift: (N,) or a number, in samples; positive moves the content
    right (``out[i] = x[i - shift]``, as ``torch.roll(x, shift, -1)`` for an integer shift).
    scale: (N,), a number or None (= 1); > 1 stretches the content about the centre
    (L - 1) / 2: ``out[i] = x[c + (i - c) / scale - shift]``, read circularly with linear
    interpolation. Returns a tensor of x's shape. shift = 0, scale = 1 is exactly the identity.
    """
    if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[1] != 1):
        raise ValueError(f"shift_scale: x must be (N, L) or (N, 1, L), got {tuple(x.shape)}")
    shape, x2 = x.shape, x.reshape(x.shape[0], x.shape[-1])  # (N, L)
    n, length = x2.shape
    shift = torch.as_tensor(shift, dtype=x.dtype, device=x.device).expand(n)
    i = torch.arange(length, dtype=x.dtype, device=x.device)  # (L,)
    if scale is None:
        pos = i[None, :] - shift[:, None]  # (N, L) the source position of each output sample
    else:
        scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device).expand(n)
        if bool((scale <= 0).any()):
            raise ValueError("shift_scale: scale must be > 0")
        centre = (length - 1) / 2
        pos = centre + (i[None, :] - centre) / scale[:, None] - shift[:, None]
    left = torch.floor(pos)
    frac = pos - left  # (N, L) in [0, 1): the weight of the right neighbour
    left = left.long() % length
    right = (left + 1) % length
    out = (1 - frac) * x2.gather(1, left) + frac * x2.gather(1, right)
    return out.reshape(shape)


def random_shift(x, generator, max_shift=4, integer=True):
    """The plain augmentation: a circular shift by a uniform draw in [-max_shift, max_shift] per sample.

    Signature ``augment(x, generator) -> x`` of `kdlib.train.train(..., augment=...)` (bind
    max_shift with functools.partial). integer=True draws whole samples (a torch.roll per signal);
    otherwise a uniform real shift, read by interpolation. Draws come from `generator` (CPU).
    """
    n = x.shape[0]
    if integer:
        shift = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator).to(x.dtype)
    else:
        shift = (2 * torch.rand(n, generator=generator) - 1) * max_shift
    return shift_scale(x, shift.to(x.device))


class ShiftScaleAugmentor(nn.Module):
    """A learned, stochastic per-sample shift/scale: a small network reads x and outputs a distribution.

    shift = max_shift * tanh(mu(x) + sigma(x) * eps), eps ~ N(0, 1) (reparameterised, so the
    gradient reaches mu and sigma); scale = exp(log(max_scale) * tanh(b(x))). Hence
    |shift| <= max_shift and 1 / max_scale <= scale <= max_scale whatever the network outputs
    (max_scale = 1: shift only). Why a distribution and not one shift per signal: a deterministic
    adversary collapses onto a single hard shift (all signals moved by +max_shift, tanh saturated),
    which teaches the student one direction only; the spread sigma lets it keep proposing several.
    The last layer starts at zero (mu = 0, sigma = 1, scale = 1), so at initialisation the
    augmentor draws symmetric random shifts. eps comes from the augmentor's own generator.
    """

    def __init__(self, length=40, hidden=32, max_shift=8.0, max_scale=1.0, seed=0):
        super().__init__()
        if max_shift < 0 or max_scale < 1:
            raise ValueError(f"ShiftScaleAugmentor: need max_shift >= 0 and max_scale >= 1, got {max_shift}, {max_scale}")
        self.max_shift, self.max_scale = float(max_shift), float(max_scale)
        self.net = nn.Sequential(nn.Linear(length, hidden), nn.ReLU(), nn.Linear(hidden, 3))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.generator = torch.Generator().manual_seed(seed)

    def params(self, x):
        """(N, L) or (N, 1, L) signals -> per-sample (shift (N,), scale (N,)), within the bounds."""
        mu, log_sigma, b = self.net(x.reshape(x.shape[0], x.shape[-1])).unbind(1)
        eps = torch.randn(x.shape[0], generator=self.generator).to(x)
        shift = self.max_shift * torch.tanh(mu + log_sigma.exp() * eps)
        scale = torch.exp(math.log(self.max_scale) * torch.tanh(b))
        return shift, scale

    def forward(self, x):
        shift, scale = self.params(x)
        return shift_scale(x, shift, scale if self.max_scale > 1 else None)
