"""Logit-distillation losses: DKD, Born-Again targets, LumiNet, Dual-Head KD, Mixup-KD (std-scaled logits)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .divergences import _kl, _log_probs, _reduce


def dkd_terms(student_logits, teacher_logits, target, temperature):
    """Per-sample TCKD and NCKD of Decoupled KD (Zhao et al. 2022, Eq. 7), without T^2.

    TCKD = KL(b_t || b_s) over the binary [target, non-target] distribution;
    NCKD = KL(p^_t || p^_s) over the classes other than the target, renormalised.
    Also returns the teacher's target probability p_t,gt, so that
    KL(p_t || p_s) = TCKD + (1 - p_t,gt) * NCKD holds per sample (Eq. 7).
    target: (N,) or (N, T) class indices. Returns three tensors of shape target.shape.
    """
    log_p_s = _log_probs(student_logits, temperature)
    log_p_t = _log_probs(teacher_logits, temperature)
    gt = F.one_hot(target, log_p_s.shape[-1]).bool()

    def binary(log_p):  # log [p_gt, 1 - p_gt], (..., 2)
        log_gt = log_p.masked_fill(~gt, -math.inf).logsumexp(-1)
        log_rest = log_p.masked_fill(gt, -math.inf).logsumexp(-1)
        return torch.stack([log_gt, log_rest], dim=-1)

    def non_target(log_p):  # renormalised over the non-target classes; target entry -> 0 mass
        masked = log_p.masked_fill(gt, -math.inf)
        return masked - masked.logsumexp(-1, keepdim=True)

    b_s, b_t = binary(log_p_s), binary(log_p_t)
    tckd = _kl(b_t, b_s)
    n_s, n_t = non_target(log_p_s), non_target(log_p_t)
    # the target entry is exp(-inf) * (-inf - -inf) = nan; it carries no mass, so zero it
    nckd = (n_t.exp() * (n_t - n_s)).masked_fill(gt, 0.0).sum(-1)
    return tckd, nckd, b_t[..., 0].exp()


def dkd_loss(student_logits, teacher_logits, target, alpha, beta, temperature, mask=None):
    """Decoupled KD (Zhao et al. 2022, Eq. 8): alpha * TCKD + beta * NCKD, with T^2 inside.

    No warm-up here: mdistiller's linear 20-epoch warm-up belongs to the method.
    Shapes: logits (N, C) or (N, T, V); target (N,) or (N, T). Returns a scalar.
    """
    tckd, nckd, _ = dkd_terms(student_logits, teacher_logits, target, temperature)
    return temperature**2 * _reduce(alpha * tckd + beta * nckd, mask)


# ------------------------------------------------- Born-Again Networks: target transforms (BAN)


def cwtm_weights(teacher_logits):
    """Born-Again Networks (Furlanello et al. 2018, Sec. 3.2), CWTM: per-sample label-CE weights.

    w_s = max_c p_t(c | x_s) / sum_u max_c p_t(c | x_u), the teacher's confidence normalised
    over the batch, so the weights sum to one and sum_s w_s CE(y_s, p_s) is a weighted mean.
    Only the teacher's max confidence is used; its other entries (the dark knowledge) are not.
    teacher_logits: (..., N, C). Returns (..., N) float32, detached (no gradient into the teacher).
    """
    confidence = F.softmax(teacher_logits.detach().float(), dim=-1).amax(-1)
    return confidence / confidence.sum(-1, keepdim=True)


def dkpp_permute(teacher_probs, generator=None):
    """Born-Again Networks (Furlanello et al. 2018, Sec. 3.2), DKPP: permuted dark knowledge.

    Each row keeps its argmax entry in place; the other C - 1 entries are randomly permuted
    among the non-argmax positions (a fresh permutation per row), destroying the class-similarity
    structure while keeping the confidence and the set of values. Works on probabilities or on
    logits alike (softmax commutes with permutations). teacher_probs: (N, C). Returns (N, C),
    detached; draws from `generator` (a CPU torch.Generator) or the global stream.
    """
    values = teacher_probs.detach()
    n, c = values.shape
    top = values.argmax(-1, keepdim=True)  # (N, 1)
    positions = torch.arange(c, device=values.device).expand(n, c)
    others = positions[positions != top].view(n, c - 1)  # non-argmax positions, (N, C-1)
    order = torch.rand(n, c - 1, generator=generator).argsort(-1).to(values.device)
    shuffled = values.gather(1, others.gather(1, order))
    return values.scatter(1, others, shuffled)


def target_mass_cross_entropy(student_logits, target_weights):
    """Cross-entropy to nonnegative per-sample targets, normalised by the batch's target mass:

        L = -sum_s sum_c w_sc log p_s,c(x_s) / sum_s sum_c w_sc.

    Born-Again Networks (Furlanello et al. 2018, Sec. 3.2) with the teacher's part computed once:
    rows of w summing to one give the mean soft cross-entropy (BAN, DKPP: `soft_cross_entropy`);
    w_s = max_c p_t,c(x_s) * onehot(y_s) gives the label CE weighted by the teacher's confidence,
    normalised over the batch (CWTM: ``sum_s cwtm_weights_s * CE_s``). Shapes (..., N, C) -> (...),
    float32; no gradient flows into `target_weights`.
    """
    log_p_s = F.log_softmax(student_logits.float(), dim=-1)
    w = target_weights.detach().float()
    return -(w * log_p_s).sum((-2, -1)) / w.sum((-2, -1))


def subclass_kd_loss(student_logits, target_probs, temperature=1.0, mask=None):
    """(Pseudo-)subclass distillation: T^2 * KL(q || softmax(z_s / T)) over C*k subclasses.

    Subclass Distillation (Müller et al. 2020) and LELP (Loo et al. 2024, Sec. 3): the
    target q is already a distribution (the teacher's pseudo-subclass probabilities, built
    at temperature T), so it is passed as probabilities; zero entries are allowed.
    student_logits, target_probs: (N, C*k). Returns a scalar (batchmean), T^2 inside.
    """
    log_p_s = _log_probs(student_logits, temperature)
    q = target_probs.float()
    kl = (torch.xlogy(q, q) - q * log_p_s).sum(-1)
    return temperature**2 * _reduce(kl, mask)


# ------------------------------------------------- LumiNet: batch-standardised logits (Hossain et al.)


def batch_standardise(logits, eps=1e-5):
    """LumiNet's "perception" transform: standardise each class's logit over the batch.

    z~_ic = (z_ic - mu_c) / sqrt(sigma_c^2 + eps), with mu_c and sigma_c^2 the batch mean and the
    biased (1/N) variance of class c, as in the official code (ismail31416/LumiNet,
    mdistiller/distillers/Luminet.py, `perception`). logits: (..., N, C) -> (..., N, C), float32.
    A sample's output depends on the rest of its batch; a batch of one maps to all zeros.
    """
    z = logits.float()
    mu = z.mean(-2, keepdim=True)  # over the samples (the axis before the classes), per class
    var = z.var(-2, unbiased=False, keepdim=True)
    return (z - mu) / torch.sqrt(var + eps)


def luminet_loss(student_logits, teacher_logits, temperature, eps=1e-5):
    """LumiNet (Hossain et al., TMLR 2025): KL(softmax(z~_t / T) || softmax(z~_s / T)), batchmean.

    z~ = batch_standardise(z) for teacher and student separately. There is NO T^2 factor here:
    the official code scales this KL by alpha^2 (alpha = 33 to 75 on CIFAR-100), not by T^2; the
    method applies that weight. Equation numbers not checked against the paper; this follows the
    code. student_logits, teacher_logits: (N, C). Returns a scalar.
    """
    log_p_s = _log_probs(batch_standardise(student_logits, eps), temperature)
    log_p_t = _log_probs(batch_standardise(teacher_logits, eps), temperature)
    return _reduce(_kl(log_p_t, log_p_s))


# ------------------------------------------------------------ Dual-Head KD: logit-level BinaryKL


# The official code takes log(clamp(sigmoid(.), eps, 1 - eps)) in float32, where 1 - 1e-8 rounds
# to 1, so the upper clamp does nothing: sigmoid(x) is exactly 1 for x >= 16.64 and log(1 - p) is
# -inf there. BinaryKL therefore overflows once the *student's* scaled logit z_s / T exceeds about 17,
# whatever the teacher's (inf; NaN when the teacher's is saturated too, 0 * -inf), and BinaryKL-Norm
# once the signed gap (z_s - z_t) / T exceeds about 17. A large teacher logit alone, or a large
# negative gap, is harmless: the lower clamp at 1e-8 is representable. (Evaluated in float32 in
# tests/test_dhkd.py.) Here the same quantity is computed with log-sigmoid and the log clamped at
# log(eps): equal to the official value wherever that is finite, with the same zero gradient beyond
# the clamp.


def _log_bernoulli(logits, eps):
    """(log p, log(1 - p)) of p = sigmoid(logits), each clamped below at log(eps) like the official clamp."""
    floor = math.log(eps)
    return F.logsigmoid(logits).clamp_min(floor), F.logsigmoid(-logits).clamp_min(floor)


def binary_kl(student_logits, teacher_logits, temperature=2.0, eps=1e-8, mask=None):
    """BinaryKL of Dual-Head KD (Yang et al. 2024/2025, `distiller_zoo/BinaryKL.py`).

    T^2 * mean_n sum_c KL( Bern(sigma(z_t,c / T)) || Bern(sigma(z_s,c / T)) ): every class is its
    own binary problem, so the loss constrains each logit, not only their differences as softmax
    KD does. Probabilities clamped to [eps, 1 - eps] as in the official code (in log space).
    student_logits, teacher_logits: (N, C). Returns a scalar (sum over classes, mean over samples).
    """
    log_s1, log_s0 = _log_bernoulli(student_logits.float() / temperature, eps)
    log_t1, log_t0 = _log_bernoulli(teacher_logits.float() / temperature, eps)
    kl = log_t1.exp() * (log_t1 - log_s1) + log_t0.exp() * (log_t0 - log_s0)
    return temperature**2 * _reduce(kl.sum(-1), mask)


def binary_kl_norm(student_logits, teacher_logits, temperature=2.0, eps=1e-8, mask=None):
    """BinaryKL-Norm of Dual-Head KD, the loss DHKD trains with (`distiller_zoo/BinaryKLNorm.py`).

    T^2 * mean_n sum_c KL( Bern(1/2) || Bern(sigma((z_s,c - z_t,c) / T)) ), which equals
    T^2 * mean_n sum_c log cosh((z_s,c - z_t,c) / (2T)) inside the clamp: a robust logit matching,
    quadratic ((z_s - z_t)^2 / 8) for small gaps and linear (|z_s - z_t| T / 2) for large ones.
    Shapes as `binary_kl`. Returns a scalar.
    """
    log_d1, log_d0 = _log_bernoulli((student_logits.float() - teacher_logits.float()) / temperature, eps)
    kl = 0.5 * (math.log(0.5) - log_d1) + 0.5 * (math.log(0.5) - log_d0)
    return temperature**2 * _reduce(kl.sum(-1), mask)


def dino_distill_loss(student_logits, teacher_logits, tau_s=0.1, tau_t=0.04, center=None, mask=None):
    """DINO-style distillation into a (random) teacher (Sarnthein et al., ICML 2023, Eq. 1; Caron et al. 2021).

    KL( softmax((t - center) / tau_t) || softmax(s / tau_s) ): forward KL, the centred and sharpened
    teacher is the target. Same gradient as the paper's cross-entropy (they differ by the teacher's
    entropy, a constant); the KL form is >= 0 and 0 exactly when s / tau_s = (t - center) / tau_t
    up to a constant per row. No T^2 factor (two temperatures; the paper has none).
    student_logits, teacher_logits: (N, K) head outputs; center: (K,) or None. Reduction: batchmean.
    """
    t = teacher_logits.float().detach()
    if center is not None:
        t = t - center.float()
    return _reduce(_kl(_log_probs(t, tau_t), _log_probs(student_logits, tau_s)), mask)


# ------------------------------------------------ Mixup-KD: logits rescaled by their own std (Choi et al.)


def std_scale(logits, eps=1e-8):
    """Divide each sample's logit vector by its own standard deviation: z / sigma(z).

    sigma is the unbiased (N-1) std over the classes, as `torch.std` in the official code
    (hchoi71/MIX-KD, distiller_zoo/MIXSTD.py). It acts as a per-sample temperature T = sigma(z):
    a confident (spread-out) logit vector is cooled less than its raw scale would suggest and a flat
    one is sharpened. logits (N, C) -> (N, C), float32; invariant to z -> a z for a > 0.
    """
    z = logits.float()
    return z / z.std(-1, keepdim=True).clamp_min(eps)


def std_kd_loss(student_logits, teacher_logits, eps=1e-8):
    """Mixup-KD's distillation term (Choi et al., WACV 2023, official MIXSTD loss):
    KL(softmax(z_t / sigma(z_t)) || softmax(z_s / sigma(z_s))), batchmean.

    Each model's logits are divided by their own per-sample std (`std_scale`); there is no T^2
    factor (the code has none). student_logits, teacher_logits: (N, C). Returns a scalar.
    """
    log_p_s = F.log_softmax(std_scale(student_logits, eps), dim=-1)
    log_p_t = F.log_softmax(std_scale(teacher_logits, eps), dim=-1)
    return _reduce(_kl(log_p_t, log_p_s))


# the public losses of this family, re-exported by kdlib.losses
__all__ = [name for name, obj in list(globals().items())
           if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == __name__]
