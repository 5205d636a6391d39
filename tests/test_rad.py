"""Robust Active Distillation: each rule returns exactly `budget` distinct pool indices,
deterministic per seed; margin selection takes the smallest margins; RAD's probabilities sum to
the budget, reduce to margin selection when the teacher is never wrong and spread out (inversely
to the gain) as the teacher's mistakes grow; systematic sampling is exact; the masked loss; a
short two-round run."""

import pytest
import torch

from kdlib.methods import CE, METHODS
from kdlib.methods.rad import (QUERIED, ActiveKD, active_kd_terms, margin_selection, query_round, rad_probabilities,
                               rad_selection, random_selection, select, student_margins, systematic_sample,
                               training_set)
from kdlib.models.small import MLP
from kdlib.train import train


def pool_logits(n=300, c=10, seed=0):
    return 3 * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rule", ["random", "margin", "rad"])
@pytest.mark.parametrize("budget", [1, 17, 150, 300])
def test_every_rule_returns_budget_distinct_indices_deterministically(rule, budget):
    logits = pool_logits()
    a = select(rule, logits, budget, k=30.0, seed=3)
    b = select(rule, logits, budget, k=30.0, seed=3)
    assert len(a) == budget and len(set(a.tolist())) == budget
    assert a.min() >= 0 and a.max() < len(logits)
    assert torch.equal(a, b)


@pytest.mark.parametrize("rule", ["random", "rad"])
def test_random_rules_change_with_the_seed(rule):
    logits = pool_logits()
    assert not torch.equal(select(rule, logits, 50, k=60.0, seed=0), select(rule, logits, 50, k=60.0, seed=1))


def test_margin_picks_the_smallest_margins():
    logits = pool_logits()
    picked = margin_selection(logits, 40)
    m = student_margins(logits)
    rest = torch.ones(len(m), dtype=torch.bool)
    rest[picked] = False
    assert m[picked].max() <= m[rest].min()
    # a hand-made case: probabilities (0.5, 0.5) has margin 0, (0.9, 0.1) has margin 0.8
    two = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]]))
    assert torch.allclose(student_margins(two), torch.tensor([0.8, 0.0, 0.4]), atol=1e-6)
    assert margin_selection(two, 1).tolist() == [1]


def test_rad_reduces_to_margin_selection_when_the_teacher_is_never_wrong():
    logits = pool_logits()
    for budget in (5, 60, 200):
        p = rad_probabilities(1 - student_margins(logits), budget, k=0.0)
        assert torch.isclose(p.sum(), torch.tensor(float(budget), dtype=p.dtype))
        top = set(margin_selection(logits, budget).tolist())
        assert set((p > 0.999).nonzero().squeeze(1).tolist()) == top
        assert set(rad_selection(logits, budget, k=0.0, seed=7).tolist()) == top


def test_rad_probabilities_are_valid_and_spread_as_mistakes_grow():
    gains = torch.rand(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    support = []
    for k in (0.0, 10.0, 50.0, 200.0):
        p = rad_probabilities(gains, 40, k)
        assert torch.isclose(p.sum(), torch.tensor(40.0, dtype=p.dtype)) and p.min() >= 0 and p.max() <= 1 + 1e-12
        support.append(int((p > 1e-9).sum()))
    assert support == sorted(support) and support[-1] > support[0] == 40
    # inside the support and below the cap, p_i g_i is one level c: p is inversely proportional to the gain
    p = rad_probabilities(gains, 40, 50.0)
    inner = (p > 1e-9) & (p < 1 - 1e-9)
    level = p[inner] * gains[inner]
    assert inner.sum() > 40 and (level.max() - level.min()) / level.max() < 0.05  # the last point is partial
    assert (level.sort().values[1:] - level.max()).abs().max() < 1e-9


def test_rad_probabilities_solve_the_worst_case_game_on_a_small_case():
    # 3 points, budget 1, one mistake: a brute-force grid over p must not beat the solver
    gains = torch.tensor([0.9, 0.6, 0.3], dtype=torch.float64)
    p = rad_probabilities(gains, 1, 1.0)

    def worst(q):
        v = (q * gains).sort(descending=True).values
        return float(v[1:].sum())

    best = 0.0
    steps = torch.linspace(0, 1, 101, dtype=torch.float64)
    for a in steps:
        for b in steps:
            c = 1 - a - b
            if c >= -1e-12:
                best = max(best, worst(torch.stack([a, b, c.clamp(min=0)])))
    assert worst(p) >= best - 1e-3
    # equal gains: the adversary makes the learner spread its budget evenly
    assert torch.allclose(rad_probabilities(torch.full((4,), 0.5, dtype=torch.float64), 2, 1.0),
                          torch.full((4,), 0.5, dtype=torch.float64))


def test_systematic_sampling_has_the_inclusion_probabilities():
    p = torch.tensor([1.0, 0.5, 0.25, 0.25, 0.75, 0.25], dtype=torch.float64)
    counts = torch.zeros(6)
    for seed in range(2000):
        picked = systematic_sample(p, 3, seed)
        assert len(set(picked.tolist())) == 3
        counts[picked] += 1
    assert torch.allclose(counts / 2000, p.float(), atol=0.04)
    with pytest.raises(ValueError, match="budget"):
        systematic_sample(p, 2, 0)


def test_bad_inputs_fail_with_one_clear_line():
    with pytest.raises(ValueError, match="budget"):
        random_selection(10, 11, 0)
    with pytest.raises(ValueError, match="budget"):
        margin_selection(pool_logits(5), 0)
    with pytest.raises(ValueError, match="k"):
        rad_probabilities(torch.rand(10), 3, -1.0)
    with pytest.raises(ValueError, match="rule"):
        select("entropy", pool_logits(5), 2)


def test_query_rounds_never_pick_a_point_twice():
    logits = pool_logits(100)
    picked = torch.empty(0, dtype=torch.long)
    for r, rule in enumerate(["rad", "margin", "random", "rad"]):
        picked = query_round(rule, logits, picked, 20, error_rate=0.2, seed=r)
        assert len(picked) == 20 * (r + 1) and len(set(picked.tolist())) == len(picked)


def test_active_kd_loss_masks_rows_and_weighs_each_row_one_over_n():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    y = torch.tensor([2, QUERIED, 0, QUERIED, QUERIED, 4])
    terms = active_kd_terms(s, t, y, temperature=2.0)
    lab = y >= 0
    ce = torch.nn.functional.cross_entropy(s[lab], y[lab], reduction="sum") / 6
    kl = torch.nn.functional.kl_div((s[~lab] / 2).log_softmax(-1), (t[~lab] / 2).log_softmax(-1),
                                    log_target=True, reduction="sum") * 4 / 6
    assert torch.allclose(terms["ce"], ce) and torch.allclose(terms["kd"], kl)
    assert float(active_kd_terms(t, t, y)["kd"]) == pytest.approx(0.0, abs=1e-6)  # zero at equality
    assert float(terms["kd"]) >= 0
    # golden value (seeded tensors above)
    assert float(terms["ce"]) == pytest.approx(0.656789, abs=1e-5)
    assert float(terms["kd"]) == pytest.approx(0.365828, abs=1e-5)
    # no gradient into the teacher; stacked (K, N, C) equals per-seed
    s.requires_grad_(True)
    t2 = t.clone().requires_grad_(True)
    ActiveKD().terms_from_logits(s, t2.detach(), y)["kd"].backward()
    assert t2.grad is None and s.grad is not None
    stacked = active_kd_terms(torch.stack([s, 2 * s]).detach(), torch.stack([t, t]), torch.stack([y, y]))
    assert torch.allclose(stacked["kd"][1], active_kd_terms(2 * s.detach(), t, y)["kd"])


def test_training_set_and_a_short_run_after_two_rounds():
    from kdlib.batched import train_seeds

    g = torch.Generator().manual_seed(0)
    labelled = (torch.randn(40, 40, generator=g), torch.randint(0, 10, (40,), generator=g))
    pool_x = torch.randn(200, 40, generator=g)
    torch.manual_seed(0)
    teacher = MLP(in_dim=40, hidden=(16,)).eval()
    assert METHODS["rad"] is ActiveKD

    def make(seed):
        torch.manual_seed(seed)
        return MLP(in_dim=40, hidden=(16,))

    picked = torch.empty(0, dtype=torch.long)
    student = make(0)
    train(student, CE(), labelled, epochs=1, batch_size=20, progress=False)  # round 0: labels only
    for r in range(2):
        picked = query_round("rad", student(pool_x).detach(), picked, 30, error_rate=0.1, seed=r)
        x, y = training_set(labelled, pool_x, picked)
        assert len(x) == 40 + 30 * (r + 1) and int((y == QUERIED).sum()) == 30 * (r + 1)
        student = make(0)
        hist = train(student, ActiveKD(), (x, y), teacher=teacher, epochs=2, batch_size=20, progress=False)
        assert set(hist) >= {"ce", "kd"} and all(torch.isfinite(torch.tensor(hist["loss"])))
    # the batched path gives the same students as the loop
    students, _ = train_seeds(make, ActiveKD(), lambda s: (x, y), [0, 1], teacher=teacher, epochs=2,
                              batch_size=20, progress=False)
    loop = make(1)
    train(loop, ActiveKD(), (x, y), teacher=teacher, seed=1, epochs=2, batch_size=20, progress=False)
    assert torch.allclose(students[1](x), loop(x), atol=1e-5)
