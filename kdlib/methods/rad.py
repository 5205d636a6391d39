"""Robust Active Distillation (Baykal, Trinh, Iliopoulos, Menghani & Vee, ICLR 2023).

Active distillation: a student trained on a small labelled seed set chooses which points of an
unlabelled pool to send to the teacher, `budget` queries in all, and is retrained on the labelled
points (their labels) and the queried points (the teacher's soft labels). The selection rules are
pure functions of the student's pool logits and a seed:

* `random_selection`: `budget` pool indices uniformly without replacement;
* `margin_selection`: the `budget` points of smallest student margin (top-1 minus top-2
  probability), the classical uncertainty rule: the most *informative* points;
* `rad_selection`: RAD's trade-off between informativeness and teacher correctness. The teacher
  is wrong on an unknown set of about `k` pool points; the book's reading of the paper's game
  (notebooks/rad.md, Method): the learner picks inclusion probabilities p (sum p = budget,
  p_i <= 1), an adversary then spoils the k points of largest expected gain p_i g_i, where
  g_i = 1 - margin_i. The learner's worst-case gain is

      max_p min_{|S| = k} sum_{i not in S} p_i g_i = max_{p, c} sum_i min(p_i g_i, c) - k c,

  and for a fixed level c the best p fills points in decreasing gain with p_i = min(1, c / g_i)
  until the budget is spent. So `rad_probabilities` maximises a concave function of the one
  number c. With k = 0 it is the top-`budget` gains, i.e. margin selection; as k grows the
  probability spreads over more points, inversely to their gain (the adversary's favourite
  targets are hedged).

`ActiveKD` is the student's loss on the mixed set: cross-entropy on the labelled rows (target
>= 0) and T^2 KL(teacher || student) on the queried rows (target = `QUERIED`), each row weighted
1 / batch size. `training_set` builds that set; `select` dispatches on a rule's name.
"""

from __future__ import annotations

import math

import torch

from ..method import Method

RULES = ("random", "margin", "rad")
QUERIED = -1  # the target of a row whose label is the teacher's soft label


def student_margins(logits: torch.Tensor) -> torch.Tensor:
    """(N, C) logits -> (N,) top-1 minus top-2 softmax probability, in [0, 1] (0 = most uncertain)."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"student_margins: logits must be (N, C>=2), got {tuple(logits.shape)}")
    top2 = logits.float().softmax(-1).topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def _check_budget(n_pool: int, budget: int) -> None:
    if not 1 <= budget <= n_pool:
        raise ValueError(f"budget must be in [1, pool size {n_pool}], got {budget}")


def random_selection(n_pool: int, budget: int, seed: int) -> torch.Tensor:
    """`budget` distinct pool indices, uniformly at random, a function of `seed` only."""
    _check_budget(n_pool, budget)
    return torch.randperm(n_pool, generator=torch.Generator().manual_seed(seed))[:budget]


def margin_selection(logits: torch.Tensor, budget: int) -> torch.Tensor:
    """The `budget` pool indices of smallest student margin (ties: the lower index first)."""
    margins = student_margins(logits)
    _check_budget(len(margins), budget)
    return torch.sort(margins, stable=True).indices[:budget]


def _fill(gains_desc: torch.Tensor, budget: int, c: float) -> torch.Tensor:
    """For level c: p_i = min(1, c / g_i) in the given (decreasing-gain) order until `budget` is spent."""
    want = torch.clamp(c / gains_desc, max=1.0)
    before = torch.cumsum(want, 0) - want  # budget used by the points before i
    return torch.minimum(want, torch.clamp(budget - before, min=0.0))


def _worst_case_gain(gains_desc: torch.Tensor, budget: int, k: float, c: float) -> float:
    p = _fill(gains_desc, budget, c)
    return float((p * gains_desc).sum() - k * c)  # p_i g_i <= c, so min(p_i g_i, c) = p_i g_i


def rad_probabilities(gains: torch.Tensor, budget: int, k: float, iters: int = 200) -> torch.Tensor:
    """Inclusion probabilities (N,) of the RAD game: sum = budget, each in [0, 1].

    gains: (N,) informativeness g_i in [0, 1] (RAD: 1 - student margin); budget: queries;
    k: the teacher's (expected) number of wrong labels in the pool, >= 0.
    The worst-case gain  sum_i p_i g_i - k c  (p filled at level c, see the module docstring) is
    concave in c, so a golden-section search over c in (0, max g] finds its maximum.
    """
    gains = torch.as_tensor(gains, dtype=torch.float64)
    if gains.dim() != 1:
        raise ValueError(f"rad_probabilities: gains must be 1-D, got shape {tuple(gains.shape)}")
    _check_budget(len(gains), budget)
    if k < 0:
        raise ValueError(f"rad_probabilities: k (teacher mistakes) must be >= 0, got {k}")
    g = gains.clamp(min=1e-6, max=1.0)  # a zero gain would cost nothing per unit of value
    order = torch.sort(-g, stable=True).indices  # decreasing gain, ties by index
    g_desc = g[order]
    lo, hi = 0.0, float(g_desc[0])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(iters):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if _worst_case_gain(g_desc, budget, k, a) < _worst_case_gain(g_desc, budget, k, b):
            lo = a
        else:
            hi = b
    p_desc = _fill(g_desc, budget, hi)
    short = budget - float(p_desc.sum())
    if short > 1e-9:  # every point already at c / g_i: top up in gain order (only if k is huge)
        room = 1.0 - p_desc
        before = torch.cumsum(room, 0) - room
        p_desc = p_desc + torch.minimum(room, torch.clamp(short - before, min=0.0))
    p = torch.empty_like(p_desc)
    p[order] = p_desc
    return p


def systematic_sample(p: torch.Tensor, budget: int, seed: int) -> torch.Tensor:
    """Exactly `budget` distinct indices with inclusion probabilities p (sum p = budget, p_i <= 1).

    Systematic sampling over a seeded random order: one uniform u; index i is taken where the
    running sum of p crosses u, u + 1, ..., u + budget - 1. Each i is taken with probability p_i.
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    if abs(float(p.sum()) - budget) > 1e-6 or float(p.max()) > 1 + 1e-9 or float(p.min()) < 0:
        raise ValueError(f"systematic_sample: p must lie in [0, 1] and sum to budget={budget}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(p), generator=g)
    u = float(torch.rand((), generator=g, dtype=torch.float64))
    ends = torch.cumsum(p[perm], 0)
    hits = torch.floor(ends - u + 1e-12) - torch.floor(ends - p[perm] - u + 1e-12)  # 0 or 1 per index
    picked = perm[hits > 0]
    if len(picked) != budget:  # rounding at the very ends: fill from the largest remaining p
        rest = torch.ones(len(p), dtype=torch.bool)
        rest[picked] = False
        extra = torch.sort(-p.masked_fill(~rest, math.inf), stable=True).indices
        picked = torch.cat([picked, extra[: budget - len(picked)]])[:budget]
    return picked


def rad_selection(logits: torch.Tensor, budget: int, k: float, seed: int) -> torch.Tensor:
    """RAD: `budget` distinct pool indices drawn with the game's probabilities (gain = 1 - margin)."""
    p = rad_probabilities(1.0 - student_margins(logits), budget, k)
    return systematic_sample(p, budget, seed)


def select(rule: str, logits: torch.Tensor, budget: int, *, k: float = 0.0, seed: int = 0) -> torch.Tensor:
    """The pool indices a rule ('random', 'margin', 'rad') picks from the student's pool logits."""
    if rule == "random":
        return random_selection(len(logits), budget, seed)
    if rule == "margin":
        return margin_selection(logits, budget)
    if rule == "rad":
        return rad_selection(logits, budget, k, seed)
    raise ValueError(f"select: unknown rule {rule!r} (use one of {', '.join(RULES)})")


def query_round(rule: str, pool_logits: torch.Tensor, picked: torch.Tensor, n_new: int, *,
                error_rate: float = 0.0, seed: int = 0) -> torch.Tensor:
    """One selection round: the already `picked` pool indices plus `n_new` more, chosen by `rule`
    among the pool points not yet picked (from the current student's (N, C) pool logits).

    RAD's k is the teacher's (estimated) error rate times the number of points still in the pool.
    """
    picked = torch.as_tensor(picked, dtype=torch.long)
    left = torch.ones(len(pool_logits), dtype=torch.bool)
    left[picked] = False
    rest = left.nonzero().squeeze(1)
    new = select(rule, pool_logits[rest], n_new, k=error_rate * len(rest), seed=seed)
    return torch.cat([picked, rest[new]])


def training_set(labelled: tuple, pool_x: torch.Tensor, picked: torch.Tensor) -> tuple:
    """(x, y): the labelled (x, y) followed by the picked pool rows with target `QUERIED`."""
    x, y = labelled[0], labelled[1]
    picked = torch.as_tensor(picked, dtype=torch.long)
    return (torch.cat([x, pool_x[picked]]),
            torch.cat([y, torch.full((len(picked),), QUERIED, dtype=y.dtype)]))


def active_kd_terms(student_logits, teacher_logits, target, temperature: float = 1.0) -> dict:
    """CE on labelled rows (target >= 0), T^2 KL(teacher || student) at T on queried rows (target < 0).

    Shapes (..., N, C), (..., N, C), (..., N); each term sums its rows and divides by N (every row
    weighs 1 / N whichever kind it is), so the terms are (...) tensors; float32. Elementwise and
    masked with `where`: vmappable, and the same function serves one seed and K stacked seeds.
    """
    s = student_logits.float()
    labelled = target >= 0
    n = target.shape[-1]
    log_p = s.log_softmax(-1)
    nll = -log_p.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    ce = torch.where(labelled, nll, torch.zeros_like(nll)).sum(-1) / n
    if teacher_logits is None:
        return {"ce": ce}
    log_t = (teacher_logits.float() / temperature).log_softmax(-1)
    log_s = (s / temperature).log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1) * temperature**2
    kd = torch.where(labelled, torch.zeros_like(kl), kl).sum(-1) / n
    return {"ce": ce, "kd": kd}


class ActiveKD(Method):
    """The student's loss after the queries: CE on labelled rows + T^2 KL on teacher-labelled rows.

    The teacher's logits reach the loss for every row (kdlib computes them once per training set)
    but are used only where target = `QUERIED`: the labelled rows never see the teacher.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return active_kd_terms(student_logits, teacher_logits, target, self.temperature)
