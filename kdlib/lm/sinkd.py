"""SinKD for language models: KL + beta * the batch-wise Sinkhorn distance over token positions.

Cui et al., "Sinkhorn Distance Minimization for Knowledge Distillation" (COLING 2024; TNNLS);
official code github.com/2018cx/SinKD. The Sinkhorn loss itself is ``kdlib.losses.sinkd_loss``
(a log-domain ``sinkhorn_plan``, checked against POT); this module decides *what the samples
are* for a causal LM and adds the 1-D toy's Sinkhorn objectives.

Samples = token positions. Each valid position of a batch of sequences gives one student and one
teacher next-token distribution (softmax over the vocabulary); a subsample of ``n_positions`` of
them (drawn from a generator seeded by (seed, step), so it is reproducible and the same for
every objective of a seed) forms the B x B cost of SinKD. The released T0 / GPT-Neo code instead
applies ``Softmax(dim=1)`` to (B, L, V) logits, which normalises over *positions*; we implement
the paper's version (softmax over the vocabulary), as papers-llm.md section 1 asks.

The official decoder-only recipe is L = CE + 0.1 KL + 0.0008 L_Sin (GPT-Neo); the distillation
here has no CE term (the student sees only the teacher, as in the divergences chapter), so the
weights are kl_weight = 1 and sinkd_weight = 0.008 (the same 0.0008 / 0.1 ratio of Sinkhorn to
KL), applied to ``sinkd_loss``'s sum over the plan (total mass n_positions).
"""

from __future__ import annotations

import torch

from kdlib.losses import kd_loss, sinkd_loss, sinkhorn_plan
from kdlib.lm.base import TokenMethod
from kdlib.lm.toy import fit_gaussian_to  # re-exported: the chapter fits SinKD's losses with it

__all__ = ["sample_positions", "sinkd_token_loss", "SinKD", "grid_sinkhorn", "toy_batch_sinkd", "fit_gaussian_to"]


def sample_positions(mask, n_positions, seed, step=0):
    """Flat indices (n,) of the positions SinKD compares: a uniform subsample of the true entries.

    mask: (N, T) bool, the valid positions; n_positions: the cap on B (the OT cost is B x B);
    all valid positions when there are at most that many. Deterministic: the draw depends only on
    (seed, step) and the mask, never on a global generator. Indices are sorted (row-major order).
    """
    if n_positions < 1:
        raise ValueError(f"sample_positions: n_positions must be >= 1, got {n_positions}")
    valid = mask.reshape(-1).nonzero().squeeze(-1)
    if valid.numel() <= n_positions:
        return valid
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    pick = torch.randperm(valid.numel(), generator=g)[:n_positions].to(valid.device)
    return valid[pick].sort().values


def sinkd_token_loss(student_logits, teacher_logits, mask, n_positions=256, seed=0, step=0, temperature=2.0,
                     eps=0.1, n_iters=20):
    """SinKD's batch-wise Sinkhorn distance with token positions as the samples (Cui et al., Sec. 3).

    student_logits, teacher_logits: aligned (N, T, V) next-token logits (``next_token_view``);
    mask (N, T) bool. Selects ``sample_positions(mask, n_positions, seed, step)`` and returns
    ``sinkd_loss`` on those (B, V) rows: sum_ij P_ij ||s_i - t_j||_1, softmax over the vocabulary
    at ``temperature`` (the official code's hard-coded 2). Scalar; no gradient into the teacher.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 3:
        raise ValueError(f"sinkd_token_loss: need aligned (N, T, V) logits, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    idx = sample_positions(mask, n_positions, seed, step)
    v = student_logits.shape[-1]
    return sinkd_loss(student_logits.reshape(-1, v)[idx], teacher_logits.reshape(-1, v)[idx], temperature, eps,
                      n_iters)


class SinKD(TokenMethod):
    """kl_weight * KL(p_T || q_S) over all valid positions + sinkd_weight * SinKD over a subsample.

    n_vocab: the content vocabulary; kl_weight = 1, sinkd_weight = 0 is plain token-level KD
    (== ``TokenKD("fkl")``); kl_weight = 0 is SinKD alone. teacher_temperature: the teacher's
    logits are divided by it before either term (0.5 sharpens: the chapter's low-overlap start).
    n_positions, seed: the subsample of positions for the B x B cost (seeded per step, see
    ``sample_positions``); temperature, eps, n_iters: ``sinkd_loss``'s (official: 2, 0.1, 20).
    Returns {"kl": ..., "sinkd": ...}, each already weighted (only the nonzero ones).
    """

    def __init__(self, n_vocab, kl_weight=1.0, sinkd_weight=0.008, n_positions=256, seed=0, temperature=2.0,
                 eps=0.1, n_iters=20, teacher_temperature=1.0):
        super().__init__()
        if kl_weight < 0 or sinkd_weight < 0 or kl_weight + sinkd_weight == 0:
            raise ValueError(f"SinKD: need kl_weight, sinkd_weight >= 0, not both 0; got {kl_weight}, {sinkd_weight}")
        if teacher_temperature <= 0:
            raise ValueError(f"SinKD: teacher_temperature must be > 0, got {teacher_temperature}")
        self.n_vocab, self.kl_weight, self.sinkd_weight = n_vocab, kl_weight, sinkd_weight
        self.n_positions, self.seed, self.temperature = n_positions, seed, temperature
        self.eps, self.n_iters, self.teacher_temperature = eps, n_iters, teacher_temperature

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        teacher_logits = teacher_logits.detach() / self.teacher_temperature
        terms = {}
        if self.kl_weight:
            terms["kl"] = self.kl_weight * kd_loss(student_logits, teacher_logits, 1.0, mask=mask)
        if self.sinkd_weight:
            terms["sinkd"] = self.sinkd_weight * sinkd_token_loss(
                student_logits, teacher_logits, mask, self.n_positions, self.seed, self.step, self.temperature,
                self.eps, self.n_iters)
        return terms


# --- the 1-D toy (kdlib.lm.toy): two readings of "the Sinkhorn distance" between one teacher and one student


def grid_sinkhorn(student_logits, teacher_logits, x, eps=0.1, n_iters=200):
    """Entropic OT between two distributions on the toy's 1-D grid, ground cost |x_i - x_j|.

    The textbook Sinkhorn distance (Cuturi 2013) with the *vocabulary items* as the support:
    <P, C> with P = sinkhorn_plan(C, eps, n_iters, a=p_t, b=p_s). student_logits, teacher_logits:
    (V,); x: (V,) the grid. Not SinKD's batch-wise form (see ``toy_batch_sinkd``); it is what the
    paper's "Wasserstein/Sinkhorn distance" means for a single pair of distributions. Scalar.
    """
    p_s, p_t = student_logits.softmax(-1), teacher_logits.softmax(-1)
    cost = (x[:, None] - x[None, :]).abs()
    # clamp: a Gaussian's far tail underflows to 0 in float32, and log 0 would give NaN gradients
    plan = sinkhorn_plan(cost, eps, n_iters, a=p_t.clamp_min(1e-30), b=p_s.clamp_min(1e-30))
    return (plan * cost).sum()


def toy_batch_sinkd(student_logits, teacher_logits, batch=8, temperature=2.0, eps=0.1, n_iters=20):
    """SinKD's batch-wise loss on a batch of ``batch`` copies of the one toy pair (V,), (V,).

    Every cost entry is the same ||s - t||_1, so the plan is uniform (mass 1 per row) and the loss
    is batch * ||s - t||_1 = 2 * batch * TVD at the temperature: on one pair of distributions the
    batch-wise Sinkhorn is the total variation of the softened distributions (tested).
    """
    return sinkd_loss(student_logits.expand(batch, -1), teacher_logits.expand(batch, -1), temperature, eps, n_iters)

