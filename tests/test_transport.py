"""The log-domain Sinkhorn against POT and against SinKD's own probability-domain sweeps; SinKD's loss properties."""

import numpy as np
import ot
import pytest
import torch

from kdlib.losses import sinkd_loss, sinkhorn_plan


def _official_sinkhorn(cost, eps, n_iters):
    """SinKD's loss.py::Sinkhorn plan: K = exp(-C/eps), then P /= P.sum(1); P /= P.sum(0), n_iters times."""
    p = torch.exp(-cost / eps)
    for _ in range(n_iters):
        p = p / p.sum(1, keepdim=True)
        p = p / p.sum(0, keepdim=True)
    return p


def test_converged_plan_matches_pot():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(6, 5, generator=g, dtype=torch.float64)
    a = torch.full((6,), 1 / 6, dtype=torch.float64)
    b = torch.full((5,), 1 / 5, dtype=torch.float64)
    ours = sinkhorn_plan(cost, eps=0.1, n_iters=2000, a=a, b=b).double()
    ref = ot.sinkhorn(a.numpy(), b.numpy(), cost.numpy(), reg=0.1, numItermax=20000, stopThr=1e-13)
    assert np.allclose(ours.numpy(), ref, atol=1e-6)
    assert abs(float((ours * cost).sum()) - float(ot.sinkhorn2(a.numpy(), b.numpy(), cost.numpy(), 0.1,
                                                                 numItermax=20000, stopThr=1e-13))) < 1e-6


def test_equals_the_official_sweeps_where_they_do_not_underflow():
    g = torch.Generator().manual_seed(1)
    cost = torch.rand(8, 8, generator=g) * 2
    assert torch.allclose(sinkhorn_plan(cost, 0.1, 20), _official_sinkhorn(cost, 0.1, 20), rtol=1e-4, atol=1e-6)


def test_small_eps_is_stable_where_the_probability_domain_underflows():
    cost = torch.tensor([[0.0, 30.0], [30.0, 0.0]]) + torch.tensor([[0.0, 0.0], [0.0, 5.0]])
    assert torch.isnan(_official_sinkhorn(cost + 10.0, 0.01, 5)).any()  # exp(-1000) = 0 everywhere
    plan = sinkhorn_plan(cost + 10.0, 0.01, 5)
    assert torch.isfinite(plan).all() and torch.allclose(plan, torch.eye(2), atol=1e-6)


def test_marginals_after_the_last_sweep():
    cost = torch.rand(5, 5, generator=torch.Generator().manual_seed(2))
    plan = sinkhorn_plan(cost, 0.5, 50)
    assert torch.allclose(plan.sum(0), torch.ones(5), atol=1e-5)  # columns exact
    assert torch.allclose(plan.sum(1), torch.ones(5), atol=1e-3)  # rows close after 50 sweeps


def test_sinkd_loss_properties_and_golden_value():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(8, 10, generator=g)
    t = torch.randn(8, 10, generator=g)
    loss = sinkd_loss(s, t)
    ps, pt = torch.softmax(s / 2, -1), torch.softmax(t / 2, -1)  # tau = 2, the official default
    cost = torch.cdist(ps, pt, p=1)
    assert loss.item() == pytest.approx(float((_official_sinkhorn(cost, 0.1, 20) * cost).sum()), rel=1e-5)
    assert loss.item() == pytest.approx(3.4943618774414062, rel=1e-5)  # golden, from the line above
    assert loss >= 0
    # permutation invariance: on its own it does not pair student i with teacher i
    perm = torch.randperm(8, generator=g)
    assert torch.allclose(sinkd_loss(s, t[perm]), loss, rtol=1e-4)
    # identical sets: transported onto themselves at (almost) no cost, for a small eps
    assert sinkd_loss(t, t, eps=1e-3, n_iters=200) < 1e-2 * loss


def test_sinkd_loss_gradient_reaches_the_student_only():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    sinkd_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="cost must be"):
        sinkhorn_plan(torch.rand(3))
    with pytest.raises(ValueError, match="eps > 0"):
        sinkhorn_plan(torch.rand(3, 3), eps=0)
    with pytest.raises(ValueError, match="sinkd_loss: need"):
        sinkd_loss(torch.rand(3, 4), torch.rand(3, 5))
