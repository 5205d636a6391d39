"""Towards the Fundamental Limits of Knowledge Transfer over Finite Domains (Zhao & Zhu, 2023).

A teacher is a conditional distribution pi*(a|s) on finite inputs S and labels A; the student sees
n i.i.d. pairs (s, a) ~ rho x pi* and, depending on the protocol, more of pi*. It is scored by
TV(pi_hat, pi* | rho) = sum_s rho(s) TV(pi_hat(.|s), pi*(.|s))  (paper Eq. 2.1). Four learners:

=========  =====================================  ==========================  =======================
learner    data                                   loss (paper Eq.)            closed form (Eq.)
=========  =====================================  ==========================  =======================
CE_sgl     (s, a): hard labels                    -sum log pi(a|s)  (3.2)     n_sa / n_s        (3.3)
CE_ptl     (s, a, pi*(a|s)): partial soft labels  -sum pi*(a|s) log pi (4.2)  prop. n_sa pi*(a|s) (4.3)
SEL_ptl    (s, a, pi*(a|s))                       sum (log pi - log pi*)^2/2  pi* on seen pairs  (4.7)
                                                  (4.6)
CE_ful     (s, pi*(.|s)): full soft labels        sum KL(pi*(.|s) || pi) (5.2) pi* on seen inputs (5.2)
=========  =====================================  ==========================  =======================

The paper's Sec. 6 fixes what the closed forms leave free: an unseen input gets Uniform(A) (every
learner), and SEL_ptl spreads the leftover mass of a seen input uniformly over its unseen labels.

Everything here works on the sufficient statistic, the count table n_sa of shape (..., S, A): a
data set of n pairs and its counts give the same estimates, and counts of n up to 10^8 are drawn
exactly in O(|S||A|) with one multinomial (`sample_counts`). No function loops over samples.
"""

from __future__ import annotations

import numpy as np
import torch

LEARNERS = ("CE_sgl", "CE_ptl", "SEL_ptl", "CE_ful")
LEARNER_LABELS = {
    "CE_sgl": "hard labels (CE_sgl)",
    "CE_ptl": "partial soft labels, naive CE (CE_ptl)",
    "SEL_ptl": "partial soft labels, SEL (SEL_ptl)",
    "CE_ful": "full soft labels (CE_ful)",
}

# ----------------------------------------------------------------------- the four losses (torch)


def _seen_log_teacher(counts, teacher):
    """log pi*(a|s) where the pair was sampled, 0 elsewhere (a sampled pair has pi* > 0)."""
    return torch.where(counts > 0, teacher.clamp_min(1e-300).log(), torch.zeros_like(teacher))


def ce_sgl_loss(student_logits, counts):
    """Hard-label cross-entropy CE_sgl, Zhao & Zhu Eq. 3.2: -(1/n) sum_i log pi(a_i | s_i).

    student_logits: (S, A) logits of a tabular student, pi = softmax over A.
    counts: (S, A) sample counts n_sa (sum n). Returns a scalar (mean over the n samples).
    """
    counts = counts.to(student_logits.dtype)
    return -(counts * student_logits.log_softmax(-1)).sum() / counts.sum()


def ce_ptl_loss(student_logits, counts, teacher):
    """Naive partial-soft-label cross-entropy CE_ptl, Eq. 4.2: -(1/n) sum_i pi*(a_i|s_i) log pi(a_i|s_i).

    teacher: (S, A) pi*; only its entries at sampled pairs enter the loss. Scalar (mean over samples).
    """
    counts = counts.to(student_logits.dtype)
    weights = torch.where(counts > 0, counts * teacher, torch.zeros_like(counts))
    return -(weights * student_logits.log_softmax(-1)).sum() / counts.sum()


def sel_ptl_loss(student_logits, counts, teacher):
    """Empirical squared-error logit loss SEL_ptl, Eq. 4.6: (1/n) sum_i (log pi(a_i|s_i) - log pi*(a_i|s_i))^2 / 2.

    Normalised logits (log-probabilities) are compared on the sampled pairs only. Scalar (mean over samples).
    """
    counts = counts.to(student_logits.dtype)
    diff = student_logits.log_softmax(-1) - _seen_log_teacher(counts, teacher)
    return (counts * 0.5 * diff.square()).sum() / counts.sum()


def ce_ful_loss(student_logits, counts, teacher):
    """Full-soft-label loss CE_ful, Eq. 5.2: (1/n) sum_i KL(pi*(.|s_i) || pi(.|s_i)).

    Forward KL (teacher first); each sampled input counts once per visit. Scalar (mean over samples).
    """
    counts = counts.to(student_logits.dtype)
    visits = counts.sum(-1)  # n_s, (S,)
    log_t = teacher.clamp_min(1e-300).log()
    kl = torch.where(teacher > 0, teacher * (log_t - student_logits.log_softmax(-1)), torch.zeros_like(teacher)).sum(-1)
    return (visits * kl).sum() / visits.sum()


# ----------------------------------------------------------------------- closed-form learners (numpy)


def ce_sgl_estimate(counts):
    """The MLE of Eq. 3.2, closed form Eq. 3.3: pi_hat(a|s) = n_sa / n_s; Uniform(A) on unseen s.

    counts: (..., S, A) integers. Returns (..., S, A) float64 rows on the simplex.
    """
    counts = np.asarray(counts, dtype=np.float64)
    visits = counts.sum(-1, keepdims=True)
    return np.where(visits > 0, counts / np.maximum(visits, 1), 1.0 / counts.shape[-1])


def ce_ptl_estimate(counts, teacher):
    """The minimiser of the naive CE_ptl (Eq. 4.2), closed form Eq. 4.3: pi_hat(a|s) ∝ n_sa pi*(a|s).

    Uses pi* only where n_sa > 0. As n grows it tends to pi*^2 / sum pi*^2 (Lemma 4.2): biased.
    counts: (..., S, A); teacher: (S, A). Returns (..., S, A); Uniform(A) on unseen s.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.where(counts > 0, counts * teacher, 0.0)
    total = weights.sum(-1, keepdims=True)
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / counts.shape[-1])


def sel_ptl_estimate(counts, teacher):
    """The SEL_ptl learner, Eq. 4.7 with the paper's Sec. 6 tie-break.

    On a seen input, pi_hat(a|s) = pi*(a|s) for every sampled label a (the loss is then 0) and the
    leftover mass 1 - sum_{seen a} pi*(a|s) is spread uniformly over the unseen labels; Uniform(A)
    on unseen inputs. Uses pi* only where n_sa > 0. counts: (..., S, A); teacher: (S, A).
    """
    counts = np.asarray(counts)
    seen = counts > 0
    known = np.where(seen, teacher, 0.0)
    leftover = np.clip(1.0 - known.sum(-1, keepdims=True), 0.0, None)
    unseen_labels = (~seen).sum(-1, keepdims=True)
    estimate = np.where(seen, known, leftover / np.maximum(unseen_labels, 1))
    return np.where(seen.any(-1, keepdims=True), estimate, 1.0 / counts.shape[-1])


def ce_ful_estimate(counts, teacher):
    """The KL minimiser of Eq. 5.2: pi_hat(.|s) = pi*(.|s) on every seen input, Uniform(A) elsewhere.

    counts: (..., S, A); teacher: (S, A). Returns (..., S, A).
    """
    counts = np.asarray(counts)
    seen = counts.sum(-1, keepdims=True) > 0
    return np.where(seen, np.broadcast_to(teacher, counts.shape), 1.0 / counts.shape[-1])


ESTIMATORS = {
    "CE_sgl": lambda counts, teacher: ce_sgl_estimate(counts),
    "CE_ptl": ce_ptl_estimate,
    "SEL_ptl": sel_ptl_estimate,
    "CE_ful": ce_ful_estimate,
}


def naive_limit(teacher):
    """Where CE_ptl converges, Lemma 4.2: pi*(.|s)^2 / sum_a pi*(a|s)^2, per input. (S, A) -> (S, A)."""
    sq = np.asarray(teacher, dtype=np.float64) ** 2
    return sq / sq.sum(-1, keepdims=True)


def tv_risk(student, teacher, rho):
    """TV(pi_hat, pi* | rho) = sum_s rho(s) (1/2) sum_a |pi_hat(a|s) - pi*(a|s)|, Eq. 2.1.

    student: (..., S, A); teacher: (S, A); rho: (S,). Returns (...,).
    """
    return 0.5 * (np.abs(student - teacher).sum(-1) * rho).sum(-1)


# ----------------------------------------------------------------------- data


def counts_from_samples(states, actions, num_states, num_actions):
    """The count table n_sa (S, A) of samples given as two integer arrays (n,), by one bincount."""
    flat = np.asarray(states) * num_actions + np.asarray(actions)
    return np.bincount(flat, minlength=num_states * num_actions).reshape(num_states, num_actions)


def sample_counts(rng, rho, teacher, n, size):
    """`size` independent count tables of n i.i.d. pairs (s, a) ~ rho x pi*: (size, S, A) int64.

    One multinomial over the |S||A| cells: the same law as drawing the n pairs one by one and
    counting them, at a cost that does not grow with n.
    """
    p = (np.asarray(rho)[:, None] * np.asarray(teacher)).ravel()
    return rng.multinomial(int(n), p / p.sum(), size=size).reshape(size, *np.shape(teacher))


# ----------------------------------------------------------------------- the paper's instances (App. F)


def instance0(num_states, num_actions, n=None):
    """Instance 0 (App. F; Fig. 1): pi*(.|s) = Uniform(A)/2 + Dirac(s mod |A| + 1)/2, rho uniform. Fixed in n."""
    teacher = np.full((num_states, num_actions), 0.5 / num_actions)
    teacher[np.arange(num_states), (np.arange(num_states) + 1) % num_actions] += 0.5  # 1-based: s mod |A| + 1
    return np.full(num_states, 1.0 / num_states), teacher


def instance1(num_states, num_actions, n):
    """Instance 1 (App. F; Fig. 2a,b), hard for CE_sgl: labels 2j-1 / 2j get (1 ± 0.25 sqrt(SA/n)) / A.

    With |A| odd the last label gets zero mass and A-1 replaces A (the paper's rule). rho uniform.
    """
    a = num_actions - num_actions % 2
    eps = 0.25 * np.sqrt(num_states * a / n)
    if eps > 1:
        raise ValueError(f"instance 1 needs n >= |S||A|/16 = {num_states * a / 16:g}, got n={n}")
    teacher = np.zeros((num_states, num_actions))
    teacher[:, 0:a:2], teacher[:, 1:a:2] = (1 + eps) / a, (1 - eps) / a
    return np.full(num_states, 1.0 / num_states), teacher


def _instance2_teacher(num_states, num_actions, n):
    a = num_actions - (1 - num_actions % 2)  # odd; with |A| even the last label gets zero mass
    light = num_states / (n + 1)
    heavy = 1 - num_states / 2 * (a - 1) / (n + 1)
    if heavy < 0:
        raise ValueError(f"instances 2 and 3 need n >= |S|(|A|-1)/2 - 1 = {num_states * (a - 1) / 2 - 1:g}, got n={n}")
    teacher = np.zeros((num_states, num_actions))
    teacher[:, 0:a - 1:2] = light  # labels 2j-1 (1-based): S/(n+1); labels 2j: 0
    teacher[:, a - 1] = heavy
    return teacher


def instance2(num_states, num_actions, n):
    """Instance 2 (App. F; Fig. 2c,d), hard for SEL_ptl: labels 2j-1 get S/(n+1), labels 2j get 0,
    the last label the rest, 1 - (S/2)(A-1)/(n+1). rho uniform."""
    return np.full(num_states, 1.0 / num_states), _instance2_teacher(num_states, num_actions, n)


def instance3(num_states, num_actions, n):
    """Instance 3 (App. F; Fig. 2e,f), hard for CE_ful: rho(s) = 1/(n+1) on every input but the last,
    which gets the rest; pi* as in Instance 2 (so that SEL_ptl cannot converge too fast)."""
    if n + 1 < num_states - 1:
        raise ValueError(f"instance 3 needs n >= |S| - 2 = {num_states - 2}, got n={n}")
    rho = np.full(num_states, 1.0 / (n + 1))
    rho[-1] = 1 - (num_states - 1) / (n + 1)
    return rho, _instance2_teacher(num_states, num_actions, n)


INSTANCES = {0: instance0, 1: instance1, 2: instance2, 3: instance3}


# ----------------------------------------------------------------------- the simulation


def mean_risks(rng, rho, teacher, n, repeats, chunk=512):
    """Mean TV risk of each learner over `repeats` independent data sets of size n: {learner: float}."""
    totals = dict.fromkeys(LEARNERS, 0.0)
    for start in range(0, repeats, chunk):
        counts = sample_counts(rng, rho, teacher, n, min(chunk, repeats - start))
        for name in LEARNERS:
            totals[name] += float(tv_risk(ESTIMATORS[name](counts, teacher), teacher, rho).sum())
    return {name: total / repeats for name, total in totals.items()}


def simulate(seed, instance, num_states, num_actions, ns, repeats):
    """One seed of the paper's simulation on one instance: a row per (n, learner) with the mean TV.

    Each (seed, instance, n) has its own random stream, so grids and instances can be added
    without changing the other draws.
    """
    rows = []
    for n in ns:
        rng = np.random.default_rng([int(seed), int(instance), int(n)])
        rho, teacher = INSTANCES[instance](num_states, num_actions, n)
        for learner, tv in mean_risks(rng, rho, teacher, int(n), repeats).items():
            rows.append({"seed": int(seed), "instance": int(instance), "n": int(n), "learner": learner, "tv": tv})
    return rows


EXACT = 1e-12  # a mean TV below this is exact learning up to float rounding (1 - sum of seen pi* is not 0 exactly)


def fit_slope(ns, risks):
    """OLS slope of log10(risk) on log10(n): the estimated rate beta_hat of risk ~ n^beta (paper Sec. 6.2).

    Returns nan if any risk is at most `EXACT` (an exactly learned instance has no rate).
    """
    risks = np.asarray(risks, dtype=float)
    if np.any(risks <= EXACT):
        return float("nan")
    return float(np.polyfit(np.log10(np.asarray(ns, dtype=float)), np.log10(risks), 1)[0])


def log_grid(log10_min, log10_max, per_decade):
    """Sample sizes 10^k on a grid of `per_decade` points per decade, rounded to integers."""
    k = np.arange(round(log10_min * per_decade), round(log10_max * per_decade) + 1) / per_decade
    return [int(round(10**x)) for x in k]
