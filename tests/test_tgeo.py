"""TGeo-KD: the fused loss (limits, equality, gradients), the trilateral state, the class means,
the WLS heuristic, the noise draw, the torch.func hypergradient against autograd and a finite
difference, and a short run of both methods through the one training loop."""

import pytest
import torch
import torch.nn.functional as F

from kdlib.losses import cross_entropy, kd_loss
from kdlib.methods.tgeo import (Controller, TGeoKD, WLSKD, class_mean_probs, fused_kd_loss, lookahead_hypergrad,
                                per_sample_kd, symmetric_noise, trilateral_state, wls_alpha)
from kdlib.models import build
from kdlib.train import train


def seeded(n=16, c=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g), 3 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def test_fused_loss_limits_and_constant_alpha_is_hinton_kd():
    zs, zt, y = seeded()
    assert torch.allclose(fused_kd_loss(zs, zt, y, torch.zeros(16), 4.0), cross_entropy(zs, y), atol=1e-6)
    assert torch.allclose(fused_kd_loss(zs, zt, y, torch.ones(16), 4.0), kd_loss(zs, zt, 4.0), atol=1e-5)
    mixed = 0.3 * kd_loss(zs, zt, 4.0) + 0.7 * cross_entropy(zs, y)
    assert torch.allclose(fused_kd_loss(zs, zt, y, 0.3, 4.0), mixed, atol=1e-5)


def test_per_sample_kd_nonnegative_and_zero_at_equality():
    zs, zt, _ = seeded()
    assert (per_sample_kd(zs, zt, 2.0) >= 0).all()
    assert per_sample_kd(zt, zt, 2.0).abs().max() < 1e-5
    assert torch.allclose(per_sample_kd(zs, zt, 4.0).mean(), kd_loss(zs, zt, 4.0), atol=1e-5)


GOLDEN_FUSED = 3.202273368835449  # kdlib at the chapter's commit, seeded tensors above


def test_fused_loss_golden_value():
    zs, zt, y = seeded()
    alpha = torch.linspace(0, 1, 16)
    assert float(fused_kd_loss(zs, zt, y, alpha, 4.0)) == pytest.approx(GOLDEN_FUSED, rel=1e-5)


def test_fused_loss_gradients_reach_student_and_alpha_not_teacher():
    zs, zt, y = seeded()
    zs, zt = zs.requires_grad_(), zt.requires_grad_()
    alpha = torch.full((16,), 0.5, requires_grad=True)
    fused_kd_loss(zs, zt, y, alpha, 4.0).backward()
    assert zs.grad.abs().sum() > 0 and alpha.grad.abs().sum() > 0
    assert zt.grad is None or zt.grad.abs().sum() == 0


def test_class_means_rows_are_distributions_and_uniform_for_empty_class():
    _, zt, y = seeded(40, 10)
    y[y == 3] = 4  # class 3 has no sample
    m = class_mean_probs(zt, y, 10)
    assert torch.allclose(m.sum(-1), torch.ones(10), atol=1e-6)
    assert torch.allclose(m[3], torch.full((10,), 0.1))
    assert torch.allclose(m[4], zt[y == 4].softmax(-1).mean(0), atol=1e-6)


def test_trilateral_state_blocks():
    zs, zt, y = seeded()
    m = class_mean_probs(zt, y, 10)
    s = trilateral_state(zs, zt, y, m)
    assert s.shape == (16, 90) and not s.requires_grad
    ps, pt, oh, tb, d1, d2, d3, d4, d5 = s.split(10, dim=-1)
    assert torch.allclose(ps, zs.softmax(-1)) and torch.allclose(pt, zt.softmax(-1))
    assert torch.equal(oh, F.one_hot(y, 10).float()) and torch.allclose(tb, m[y])
    assert torch.allclose(d2, (oh - ps) ** 2) and torch.allclose(d4, (pt - oh) ** 2)
    assert torch.allclose(d3, (pt - ps) ** 2) and (s[:, 40:] >= 0).all()
    # student equals teacher: the S-T edge vanishes
    assert trilateral_state(zt, zt, y, m)[:, 60:70].abs().max() == 0


def test_wls_alpha_range_and_direction():
    zs, zt, y = seeded()
    a = wls_alpha(zs, zt, y)
    assert ((a >= 0) & (a < 1)).all() and not a.requires_grad
    # teacher right and confident, student wrong -> alpha near 1; the reverse -> near 0
    good = F.one_hot(y, 10).float() * 20
    assert (wls_alpha(-good, good, y) > 0.99).all() and (wls_alpha(good, -good, y) < 0.01).all()


def test_symmetric_noise_rate_and_always_another_class():
    y = torch.arange(10).repeat(1000)
    noisy, flipped = symmetric_noise(y, 0.2, 10, seed=0)
    assert abs(float(flipped.float().mean()) - 0.2) < 0.02
    assert (noisy[flipped] != y[flipped]).all() and torch.equal(noisy[~flipped], y[~flipped])
    assert torch.equal(symmetric_noise(y, 0.2, 10, seed=0)[0], noisy)
    with pytest.raises(ValueError, match="rate"):
        symmetric_noise(y, 1.0, 10, seed=0)


def test_controller_is_the_official_leaky_relu_mlp():
    ctrl = Controller(90)
    acts = [m for m in ctrl.net if not isinstance(m, torch.nn.Linear)]
    assert [type(m) for m in acts] == [torch.nn.LeakyReLU, torch.nn.LeakyReLU]  # official network.py
    assert all(m.negative_slope == 0.01 for m in acts)  # nn.LeakyReLU()'s default, as there
    assert [m.out_features for m in ctrl.net if isinstance(m, torch.nn.Linear)] == [32, 16, 1]
    # a negative pre-activation still passes a gradient (a ReLU would block it)
    x = torch.full((1, 90), -1.0)
    with torch.no_grad():
        ctrl.net[0].weight.fill_(0.01)
        ctrl.net[0].bias.zero_()
    assert torch.autograd.grad(ctrl(x).sum(), ctrl.net[0].weight)[0].abs().sum() > 0


def _setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
    x, xv = torch.randn(12, 6, dtype=torch.float64), torch.randn(10, 6, dtype=torch.float64)
    y, yv = torch.randint(0, 4, (12,)), torch.randint(0, 4, (10,))
    zt = 2 * torch.randn(12, 4, dtype=torch.float64)
    cm = class_mean_probs(zt, y, 4).double()
    ctrl = Controller(36).double()
    return net, ctrl, (x, y, zt), (xv, yv), cm


def _val_after_step(net, ctrl, batch, val, cm, lr):
    x, y, zt = batch
    alpha = ctrl(trilateral_state(net(x), zt, y, cm).double())
    grads = torch.autograd.grad(fused_kd_loss(net(x), zt, y, alpha, 2.0), list(net.parameters()), create_graph=True)
    fast = {n: p - lr * g for (n, p), g in zip(net.named_parameters(), grads)}
    return F.cross_entropy(torch.func.functional_call(net, fast, (val[0],)), val[1])


def test_hypergradient_matches_autograd_and_finite_difference():
    net, ctrl, batch, val, cm = _setup()
    hyper, loss = lookahead_hypergrad(net, ctrl, batch, val, cm, 2.0, 0.5)
    ref = torch.autograd.grad(_val_after_step(net, ctrl, batch, val, cm, 0.5), list(ctrl.parameters()))
    for (name, _), r in zip(ctrl.named_parameters(), ref):
        assert torch.allclose(hyper[name], r, atol=1e-10), name
    assert hyper["net.4.bias"].abs().sum() > 0  # the controller does get a gradient (the released code's bug)
    bias, eps = ctrl.net[4].bias.data, 1e-6  # .data: move the bias without recording it
    bias += eps
    up = _val_after_step(net, ctrl, batch, val, cm, 0.5)
    bias -= 2 * eps
    down = _val_after_step(net, ctrl, batch, val, cm, 0.5)
    bias += eps
    assert float(hyper["net.4.bias"]) == pytest.approx(float((up - down).detach() / (2 * eps)), rel=1e-5, abs=1e-9)


def test_lookahead_leaves_batchnorm_statistics_untouched():
    net = build("resnet8x4", num_classes=10)
    x, y, zt = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), torch.randn(4, 10)
    before = [b.clone() for b in net.buffers()]
    hyper, _ = lookahead_hypergrad(net, Controller(90), (x, y, zt), (x, y), class_mean_probs(zt, y, 10), 4.0, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
    assert all(torch.isfinite(h).all() for h in hyper.values())


def test_short_runs_train_and_move_the_controller():
    torch.manual_seed(0)
    x = torch.randn(64, 40)
    y = torch.randint(0, 10, (64,))
    teacher = torch.nn.Linear(40, 10)
    zt = teacher(x).detach()
    val = (torch.randn(32, 40), torch.randint(0, 10, (32,)))
    method = TGeoKD(class_mean_probs(zt, y, 10), val, temperature=4.0, controller_lr=1e-2, val_batch_size=16)
    before = [p.clone() for p in method.controller.parameters()]
    student = build("mlp", num_classes=10, in_dim=40, hidden=[16])
    hist = train(student, method, (x, y, zt), teacher=teacher, epochs=2, batch_size=16, progress=False)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in hist["loss"])
    assert len(method.val_losses) == 8 and len(method.alpha_trace) == 8
    assert any(not torch.equal(a, b) for a, b in zip(before, method.controller.parameters()))
    student = build("mlp", num_classes=10, in_dim=40, hidden=[16])
    hist = train(student, WLSKD(4.0), (x, y), teacher=teacher, epochs=2, batch_size=16, progress=False)
    assert hist["fused"][-1] > 0
