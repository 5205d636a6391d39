"""Dual-Head KD: BinaryKL / BinaryKL-Norm against the official formulas, their identities, the
gradient alignment, and a short run of every variant through the one training loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib import data
from kdlib.losses import binary_kl, binary_kl_norm
from kdlib.methods.dhkd import DHKD, classifier_of
from kdlib.models import build
from kdlib.train import train


def seeded(scale=1.0):
    torch.manual_seed(0)
    return torch.randn(8, 10) * scale, torch.randn(8, 10) * scale


def official_binary_kl(student, teacher, T=2.0, eps=1e-8, dtype=torch.float64):
    """distiller_zoo/BinaryKL.py; in float64 by default (where its clamp cannot overflow)."""
    n = student.shape[0]
    s = torch.sigmoid(student.to(dtype) / T).clamp(eps, 1 - eps)
    t = torch.sigmoid(teacher.to(dtype) / T).clamp(eps, 1 - eps)
    kl = F.kl_div(s.log(), t, reduction="none") + F.kl_div((1 - s).log(), 1 - t, reduction="none")
    return T**2 * kl.sum() / n


def official_binary_kl_norm(student, teacher, T=2.0, eps=1e-8, dtype=torch.float64):
    """distiller_zoo/BinaryKLNorm.py; in float64 by default."""
    n = student.shape[0]
    d = torch.sigmoid((student.to(dtype) - teacher.to(dtype)) / T).clamp(eps, 1 - eps)
    half = torch.full_like(d, 0.5)
    kl = F.kl_div(d.log(), half, reduction="none") + F.kl_div((1 - d).log(), half, reduction="none")
    return T**2 * kl.sum() / n


@pytest.mark.parametrize("scale", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_matches_official_code(scale, T):
    s, t = seeded(scale)
    assert float(binary_kl(s, t, T)) == pytest.approx(float(official_binary_kl(s, t, T)), rel=1e-5)
    assert float(binary_kl_norm(s, t, T)) == pytest.approx(float(official_binary_kl_norm(s, t, T)), rel=1e-5)


def test_where_the_float32_official_code_overflows_and_ours_does_not():
    """In float32, 1 - 1e-8 rounds to 1 and sigmoid(x) to 1 for x >= 16.64: log(1 - p) = -inf.

    BinaryKL breaks on the student's own logit (z_s / T > ~17), even with no gap at all;
    BinaryKL-Norm on the signed gap (z_s - z_t) / T > ~17. A large teacher logit or a negative
    gap does not break either. Ours is finite everywhere and equals the float64 official value.
    """
    T = 2.0
    full = lambda v: torch.full((2, 3), float(v))  # noqa: E731
    f32 = dict(T=T, dtype=torch.float32)
    # z_s / T = 20 (and = 17.5, just past the edge), teacher at 0: both official losses are inf
    for zs in (40.0, 35.0):
        assert float(official_binary_kl(full(zs), full(0), **f32)) == math.inf
        assert float(official_binary_kl_norm(full(zs), full(0), **f32)) == math.inf
    # z_s / T = 16.5: still finite
    assert math.isfinite(float(official_binary_kl(full(33), full(0), **f32)))
    # no gap at all, z_s = z_t = 40: BinaryKL is NaN (0 * -inf), BinaryKL-Norm is 0
    assert math.isnan(float(official_binary_kl(full(40), full(40), **f32)))
    assert float(official_binary_kl_norm(full(40), full(40), **f32)) == 0.0
    # a gap of 15 T with z_s / T = 30: BinaryKL overflows, BinaryKL-Norm does not
    assert float(official_binary_kl(full(60), full(30), **f32)) == math.inf
    assert math.isfinite(float(official_binary_kl_norm(full(60), full(30), **f32)))
    # a large teacher logit, or a large negative gap, is harmless in both
    assert math.isfinite(float(official_binary_kl(full(0), full(40), **f32)))
    assert math.isfinite(float(official_binary_kl_norm(full(0), full(40), **f32)))
    # a large positive gap reached through a negative teacher logit overflows BinaryKL-Norm only
    assert math.isfinite(float(official_binary_kl(full(0), full(-40), **f32)))
    assert float(official_binary_kl_norm(full(0), full(-40), **f32)) == math.inf

    for zs, zt in ((40.0, 0.0), (35.0, 0.0), (40.0, 40.0), (60.0, 30.0), (0.0, -40.0)):
        s = full(zs).requires_grad_(True)
        for ours, official in ((binary_kl, official_binary_kl), (binary_kl_norm, official_binary_kl_norm)):
            value = ours(s, full(zt), T)
            value.backward()
            assert math.isfinite(float(value.detach())) and torch.isfinite(s.grad).all()
            assert float(value.detach()) == pytest.approx(float(official(full(zs), full(zt), T=T)), rel=1e-5, abs=1e-6)
            s.grad = None


@pytest.mark.parametrize("loss", [binary_kl, binary_kl_norm])
def test_nonnegative_zero_at_equality_no_teacher_gradient(loss):
    s, t = seeded(3.0)
    assert float(loss(s, t)) >= 0
    assert float(loss(s, s.clone())) == pytest.approx(0.0, abs=1e-5)
    s, t = s.clone().requires_grad_(), t.clone().requires_grad_()
    loss(s, t.detach()).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_binary_kl_norm_is_log_cosh():
    s, t = seeded(3.0)
    T = 2.0
    expected = T**2 * torch.log(torch.cosh((s - t) / (2 * T))).sum(-1).mean()
    assert float(binary_kl_norm(s, t, T)) == pytest.approx(float(expected), rel=1e-5)
    # small gaps: quadratic, (z_s - z_t)^2 / 8 summed over classes
    small = 1e-2 * (s - t)
    assert float(binary_kl_norm(small, torch.zeros_like(small), T)) == pytest.approx(
        float((small**2).sum(-1).mean() / 8), rel=1e-3)


def test_binary_kl_sees_a_logit_shift_softmax_kd_does_not():
    s, _ = seeded()
    shifted = s + 3.0  # same softmax, different logits
    assert float(binary_kl(shifted, s)) > 0.1
    assert float(binary_kl_norm(shifted, s)) > 0.1


def test_golden():
    s, t = seeded()  # torch.manual_seed(0); randn(8, 10) twice
    assert float(binary_kl(s, t, 2.0)) == pytest.approx(2.3888834, abs=1e-5)
    assert float(binary_kl_norm(s, t, 2.0)) == pytest.approx(2.3692315, abs=1e-5)
    assert float(binary_kl(s, t, 1.0)) == pytest.approx(2.0751889, abs=1e-5)


# ------------------------------------------------------------------ the method


def test_aux_head_reads_the_penultimate_feature_and_leaves_forward_alone():
    torch.manual_seed(0)
    student, teacher = build("mlp", hidden=[16]), build("mlp", hidden=[16])
    method = DHKD(16, 10)
    method.aux.eval()  # deterministic aux head (no dropout, BN running stats) to compare values
    x, y = torch.rand(8, 64), torch.randint(0, 10, (8,))
    terms = method(student, teacher, (x, y))
    assert set(terms) == {"ce", "kd"}
    assert not classifier_of(student)._forward_pre_hooks  # the hook is removed after the forward
    assert student(x).shape == (8, 10)  # logits only
    with torch.no_grad():
        expected = binary_kl_norm(method.aux(student.features(x)), teacher(x), 2.0)
        assert float(terms["kd"]) == pytest.approx(float(expected), rel=1e-6)
        assert float(terms["ce"]) == pytest.approx(float(F.cross_entropy(student(x), y)), rel=1e-6)
    assert len(list(method.parameters())) == 6  # Linear-200, BN, Linear


def test_gradient_alignment_projects_conflicting_kd_gradient():
    torch.manual_seed(0)
    student, teacher = build("mlp", hidden=[16]), build("mlp", hidden=[16])
    x, y = torch.rand(32, 64), torch.randint(0, 10, (32,))
    method = DHKD(16, 10, dual_head=False, gradient_alignment=True)  # one head: gradients overlap fully
    terms = method(student, teacher, (x, y))
    params = method._params
    g_ce = torch.autograd.grad(terms["ce"], params, retain_graph=True)
    g_kd = torch.autograd.grad(terms["kd"], params, retain_graph=True)
    flat = lambda g: torch.cat([v.flatten() for v in g])  # noqa: E731
    c, k = flat(g_ce), flat(g_kd)
    dot = float(k @ c)
    method.backward(sum(terms.values()), terms)
    got = flat([p.grad for p in params])
    expected = c + k - min(dot, 0.0) / float(c @ c) * c
    torch.testing.assert_close(got, expected)
    if dot < 0:  # after projection the KD part is orthogonal to the CE gradient
        assert abs(float((got - c) @ c)) < 1e-5 * float(c @ c)


def test_every_variant_runs_through_train():
    task = data.digits()
    subset = data.stratified_subset(task["train"], 0.1, seed=0)
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32])
    variants = {
        "binary_kl alone": DHKD(16, 10, dual_head=False, gamma=0.0, loss="binary_kl"),
        "shared head": DHKD(16, 10, dual_head=False, gradient_alignment=False, loss="binary_kl"),
        "two heads": DHKD(16, 10, gradient_alignment=False),
        "two heads + GA": DHKD(16, 10),
    }
    for name, method in variants.items():
        student = build("mlp", hidden=[16])
        history = train(student, method, subset, teacher=teacher, epochs=2, progress=False)
        assert all(math.isfinite(v) for values in history.values() for v in values), name
        assert "kd" in history
    assert variants["two heads + GA"].steps > 0


@pytest.mark.parametrize("gamma", [0.0, 1.0], ids=["binary_kl_alone", "ce_plus_binary_kl"])
def test_shared_head_method_is_dhkd_without_second_head_and_batches_exactly(gamma, one_thread):
    """SharedHeadKD == DHKD(dual_head=False, gradient_alignment=False), and its seeds batch bit for bit."""
    from kdlib.batched import train_seeds, why_sequential
    from kdlib.methods.dhkd import SharedHeadKD
    from kdlib.tasks import make_model

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 40, generator=g), torch.randint(0, 10, (120,), generator=g)
    torch.manual_seed(1)
    teacher = build("mlp", hidden=[32], num_classes=10, in_dim=40).eval()
    recipe = dict(epochs=2, batch_size=32, lr=1e-2, optimizer="adam")

    def make_student(seed):
        return make_model("mlp", 10, [16], seed=seed, dataset="mnist1d")

    shared = SharedHeadKD(temperature=2.0, gamma=gamma, loss="binary_kl")
    reference = make_student(0)
    train(reference, DHKD(16, 10, gamma=gamma, dual_head=False, gradient_alignment=False, loss="binary_kl"),
          (x, y), teacher=teacher, seed=0, progress=False, **recipe)
    mine = make_student(0)
    train(mine, SharedHeadKD(temperature=2.0, gamma=gamma, loss="binary_kl"), (x, y), teacher=teacher, seed=0,
          progress=False, **recipe)
    for p, q in zip(mine.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)

    seeds = [0, 1, 2]
    assert why_sequential([make_student(s) for s in seeds], shared, [(x, y)] * 3) is None
    students, histories = train_seeds(make_student, shared, lambda s: (x, y), seeds, teacher=teacher,
                                      progress=False, **recipe)
    for seed, student, history in zip(seeds, students, histories):
        one = make_student(seed)
        assert history == train(one, SharedHeadKD(temperature=2.0, gamma=gamma, loss="binary_kl"), (x, y),
                                teacher=teacher, seed=seed, progress=False, **recipe)
        assert all(torch.equal(p, q) for p, q in zip(student.parameters(), one.parameters()))
