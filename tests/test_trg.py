"""TRG: the token-relation losses (zero at equality, >= 0, invariances, InfoNCE by brute force and a
golden value, the temperature schedule, no gradient into the teacher), the long-tailed split, the
teacher's cached outputs and a short run."""

import math

import pytest
import torch

from kdlib.losses import (global_temperature, knn_graph, token_context, token_infonce_loss, token_inner_loss,
                          token_local_loss)
from kdlib.methods import METHODS
from kdlib.experiments.trg import long_tailed_indices
from kdlib.methods.trg import TRG, teacher_outputs
from kdlib.models.transformer import PatchTransformer
from kdlib.train import train


def tokens(n=6, p=5, d_s=4, d_t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, d_s, generator=g), torch.randn(n, p, d_t, generator=g)


def random_rotation(d, seed=1):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q


# ------------------------------------------------------------------ local (kNN graph)


def test_knn_graph_finds_the_nearest_and_never_itself():
    pts = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    assert knn_graph(pts, 1).flatten().tolist() == [1, 0, 1, 2]
    assert knn_graph(pts, 2).tolist()[3] == [2, 1]
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(pts, 4)


def test_local_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    s, t = tokens()
    assert token_local_loss(t, t, k=4).abs().item() < 1e-6
    assert token_local_loss(t, t, k=4, sigma=0.7).abs().item() < 1e-6
    assert token_local_loss(s, t, k=4).item() > 1e-3
    for seed in range(5):  # a KL: never negative
        s, t = tokens(seed=seed)
        assert token_local_loss(s, t, k=3).item() >= 0


def test_local_loss_is_invariant_to_scale_rotation_translation_with_the_adaptive_bandwidth():
    # sigma=None: each graph's bandwidth is its own mean squared edge length, so only the shape counts
    s, t = tokens()
    moved = 5.0 * s @ random_rotation(4) + torch.randn(4)
    torch.testing.assert_close(token_local_loss(moved, t, k=4), token_local_loss(s, t, k=4), rtol=1e-4, atol=1e-6)
    # a fixed sigma makes scale matter (the student must match the teacher's scale)
    assert abs(token_local_loss(5.0 * s, t, k=4, sigma=1.0) - token_local_loss(s, t, k=4, sigma=1.0)) > 1e-3


def test_local_loss_is_invariant_to_permuting_tokens_of_both_sides_together():
    s, t = tokens()
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(token_local_loss(s[:, perm], t[:, perm], k=4), token_local_loss(s, t, k=4),
                               rtol=1e-5, atol=1e-7)


def test_local_loss_by_brute_force():
    s, t = tokens(n=2, p=3, d_s=2, d_t=3)
    S, T = s.reshape(-1, 2), t.reshape(-1, 3)
    k, m = 2, len(S)
    total = 0.0
    sq = lambda a, i, j: float((a[i] - a[j]).pow(2).sum())  # noqa: E731
    nbrs = [sorted((j for j in range(m) if j != i), key=lambda j: sq(T, i, j))[:k] for i in range(m)]
    sig_t = sum(sq(T, i, j) for i in range(m) for j in nbrs[i]) / (m * k)
    sig_s = sum(sq(S, i, j) for i in range(m) for j in nbrs[i]) / (m * k)
    for i in range(m):
        a_t = [math.exp(-sq(T, i, j) / (2 * sig_t)) for j in nbrs[i]]
        a_s = [math.exp(-sq(S, i, j) / (2 * sig_s)) for j in nbrs[i]]
        p = [a / sum(a_t) for a in a_t]
        q = [a / sum(a_s) for a in a_s]
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert token_local_loss(s, t, k=k).item() == pytest.approx(total / m, rel=1e-4)


# ------------------------------------------------------------------ global (token-wise InfoNCE)


def test_infonce_by_brute_force_and_golden_value():
    s, t = tokens(n=2, p=3, d_s=4, d_t=4)
    S = [v / v.norm() for v in s.reshape(-1, 4)]
    T = [v / v.norm() for v in t.reshape(-1, 4)]
    tau = 0.3
    brute = -sum(float(S[m] @ T[m]) / tau - math.log(sum(math.exp(float(S[m] @ T[n]) / tau) for n in range(6)))
                 for m in range(6)) / 6
    value = token_infonce_loss(s, t, tau).item()
    assert value == pytest.approx(brute, rel=1e-5)
    assert value == pytest.approx(2.4461834, rel=1e-5)  # golden: seed 0, (2, 3, 4) tokens, tau 0.3


def test_infonce_limits():
    s, _ = tokens(d_t=4)
    # aligned tokens: the positive is the most similar candidate, so the loss falls to 0 as tau falls
    losses = [token_infonce_loss(s, s, tau).item() for tau in (1.0, 0.1, 0.01)]
    assert losses[0] > losses[1] > losses[2] and losses[2] < 0.02
    # identical tokens everywhere: every candidate ties, the loss is log(N * P)
    same = torch.ones(6, 5, 4)
    assert token_infonce_loss(same, same, 0.5).item() == pytest.approx(math.log(30), rel=1e-6)
    with pytest.raises(ValueError, match="widths differ"):
        token_infonce_loss(*tokens(), 0.5)


def test_global_temperature_decreases_from_start_to_end():
    taus = [global_temperature(e, 10, 0.5, 0.1) for e in range(10)]
    assert taus[0] == pytest.approx(0.5) and taus[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    with pytest.raises(ValueError, match="tau_start >= tau_end"):
        global_temperature(0, 10, 0.1, 0.5)


# ------------------------------------------------------------------ inner (token context)


def test_inner_loss_zero_at_equality_positive_and_rows_are_distributions():
    s, t = tokens(d_t=4)
    torch.testing.assert_close(token_context(s).sum(-1), torch.ones(6, 5))
    assert token_inner_loss(t, t).item() == 0
    assert token_inner_loss(s, t).item() > 1e-4
    # different widths are fine: each side's context is (P, P)
    assert token_inner_loss(*tokens()).item() > 0


def test_inner_loss_is_invariant_to_rotating_the_student_tokens():
    # F F^T is unchanged by an orthogonal map of the feature axis
    s, t = tokens()
    torch.testing.assert_close(token_inner_loss(s @ random_rotation(4), t), token_inner_loss(s, t))


@pytest.mark.parametrize("loss", [lambda s, t: token_local_loss(s, t, k=4), token_inner_loss])
def test_no_gradient_reaches_the_teacher_tokens(loss):
    s, t = tokens()
    s.requires_grad_(True)
    t.requires_grad_(True)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


# ------------------------------------------------------------------ the long-tailed split


def test_long_tailed_counts_follow_the_exponential_profile():
    labels = torch.arange(10).repeat_interleave(50)  # 50 per class
    idx = long_tailed_indices(labels, 10, seed=0)
    counts = torch.bincount(labels[idx], minlength=10).tolist()
    assert counts == [int(50 * 10 ** (-c / 9)) for c in range(10)]
    assert counts[0] == 50 and counts[-1] == 5
    assert len(set(idx.tolist())) == len(idx)  # no duplicates
    assert torch.equal(long_tailed_indices(labels, 1, 0).sort().values, torch.arange(500))


def test_long_tailed_split_is_deterministic_per_seed():
    labels = torch.arange(10).repeat(40)
    a, b = long_tailed_indices(labels, 10, seed=3), long_tailed_indices(labels, 10, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, long_tailed_indices(labels, 10, seed=4))
    with pytest.raises(ValueError, match="imbalance"):
        long_tailed_indices(labels, 0.5)


# ------------------------------------------------------------------ the method


def small_pair():
    torch.manual_seed(0)
    teacher = PatchTransformer(dim=16, depth=2, heads=2).eval()
    student = PatchTransformer(dim=8, depth=1, heads=2)
    return student, teacher


def test_cached_teacher_outputs_give_the_same_terms_as_hooks():
    student, teacher = small_pair()
    x, y = torch.randn(20, 40), torch.randint(0, 10, (20,))
    tok, logits = teacher_outputs(teacher, x, batch_size=7)
    assert tok.shape == (20, 10, 16) and logits.shape == (20, 10)
    method = TRG((10, 8), (10, 16), k=3)
    a = method(student, teacher, (x, y))
    b = method(student, None, (x, y, tok, logits))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert set(a) == {"kd", "ce", "inner", "local", "global"}


def test_trg_short_run_trains_student_and_heads_not_teacher():
    student, teacher = small_pair()
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    before = [p.clone() for p in teacher.parameters()]
    method = TRG((10, 8), (10, 16), k=3, tokens_per_example=6)
    head = method.teacher_head.weight.clone()
    hist = train(student, method, (x, y), teacher=teacher, epochs=2, batch_size=32, progress=False)
    assert all(math.isfinite(v) for vals in hist.values() for v in vals)
    assert {"inner", "local", "global"} <= set(hist)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert not torch.equal(head, method.teacher_head.weight)  # the projection heads learn
    assert METHODS["trg"] is TRG


def test_trg_rejects_bad_shapes_and_weights():
    with pytest.raises(ValueError, match="same P"):
        TRG((10, 8), (5, 16))
    with pytest.raises(ValueError, match="local_weight"):
        TRG((10, 8), (10, 16), local_weight=-1)
