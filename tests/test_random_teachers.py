"""Random teachers: the DINO distillation loss (properties, golden value), the locality init, the network,
the closed-form probe against scikit-learn's ridge, and a short label-free run."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlib.losses import dino_distill_loss
from kdlib.methods.random_teachers import DinoNet, RandomTeacherDistill, embeddings, locality_init, ridge_probe
from kdlib.train import teacher_logits, train


def logits(seed, n=6, k=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g), torch.randn(n, k, generator=g)


def test_loss_nonnegative_and_zero_at_matched_targets():
    s, t = logits(0)
    assert dino_distill_loss(s, t, 0.1, 0.04) >= 0
    c = torch.randn(5)
    # zero when s / tau_s equals (t - c) / tau_t (up to a constant per row)
    s_match = (t - c) / 0.04 * 0.1 + 3.0
    assert dino_distill_loss(s_match, t, 0.1, 0.04, c) == pytest.approx(0.0, abs=1e-6)
    assert dino_distill_loss(s, t, 0.1, 0.04, c) > 1e-3


def test_loss_equals_kl_teacher_student_batchmean_golden():
    s, t = logits(1)
    c = torch.linspace(-0.2, 0.2, 5)
    p = F.softmax((t - c) / 0.04, -1)
    expected = F.kl_div(F.log_softmax(s / 0.1, -1), p, reduction="batchmean")
    got = dino_distill_loss(s, t, 0.1, 0.04, c)
    torch.testing.assert_close(got, expected)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    # golden value on these seeded tensors (guards against silent changes of the formula)
    assert float(got) == pytest.approx(GOLDEN, rel=1e-5)


GOLDEN = 15.3366117477417  # computed once with torch 2.x, float32


def test_loss_center_invariance_and_no_teacher_gradient():
    s, t = logits(2)
    # a constant shift of the centre does not change a softmax
    a = dino_distill_loss(s, t, 0.1, 0.04, torch.zeros(5))
    b = dino_distill_loss(s, t, 0.1, 0.04, torch.full((5,), 7.0))
    torch.testing.assert_close(a, b)
    s, t = s.requires_grad_(True), t.requires_grad_(True)
    dino_distill_loss(s, t, 0.1, 0.04).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_equal_temperatures_no_center_identical_logits_zero_loss():
    s, _ = logits(3)
    assert dino_distill_loss(s, s.clone(), 0.1, 0.1) == pytest.approx(0.0, abs=1e-7)


def test_locality_init_endpoints_and_scale():
    t, f = DinoNet(8, widths=(16,), head_hidden=8, bottleneck=4, out_dim=10, seed=0), \
        DinoNet(8, widths=(16,), head_hidden=8, bottleneck=4, out_dim=10, seed=1)
    for p0, pt in zip(locality_init(t, f, 0.0).parameters(), t.parameters()):
        torch.testing.assert_close(p0, pt)
    for p1, pf in zip(locality_init(t, f, 1.0).parameters(), f.parameters()):
        torch.testing.assert_close(p1, pf)
    mid = locality_init(t, f, 0.5)
    for pm, pt, pf in zip(mid.parameters(), t.parameters(), f.parameters()):
        torch.testing.assert_close(pm, (pt + pf) / 2 / math.sqrt(0.5))
        assert pm.requires_grad
    assert torch.equal(next(locality_init(t, f, 1e-10).parameters()), next(t.parameters()))  # float32
    with pytest.raises(ValueError, match="alpha"):
        locality_init(t, f, 1.5)


def test_dinonet_seeded_outputs_are_cosines():
    a = DinoNet(8, widths=(16,), head_hidden=8, bottleneck=4, out_dim=10, seed=3)
    b = DinoNet(8, widths=(16,), head_hidden=8, bottleneck=4, out_dim=10, seed=3)
    x = torch.randn(5, 8)
    torch.testing.assert_close(a(x), b(x))
    assert a(x).shape == (5, 10) and a(x).abs().max() <= 1 + 1e-6
    assert embeddings(a, x).shape == (5, 16)
    with pytest.raises(ValueError, match="widths"):
        DinoNet(8, widths=())


def test_ridge_probe_matches_sklearn_ridge():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    tr, va, te = (x[:60], y[:60]), (x[60:90], y[60:90]), (x[90:], y[90:])
    out = ridge_probe(tr, va, te, lambdas=(3.0,), num_classes=3)
    sc = StandardScaler().fit(tr[0].numpy())
    z = sc.transform(tr[0].numpy()) / np.sqrt(60 / 59)  # sklearn's std is the biased one; ours unbiased
    model = Ridge(alpha=3.0).fit(z, F.one_hot(tr[1], 3).numpy())
    pred = model.predict(sc.transform(te[0].numpy()) / np.sqrt(60 / 59)).argmax(-1)
    assert out["acc"] == pytest.approx(100 * float((pred == te[1].numpy()).mean()))
    assert out["lam"] == 3.0 and out["acc"] > 50


def test_short_label_free_run_moves_student_and_lowers_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    arch = dict(widths=(16,), head_hidden=16, bottleneck=8, out_dim=32)
    teacher, fresh = DinoNet(8, seed=0, **arch), DinoNet(8, seed=1, **arch)
    student = locality_init(teacher, fresh, 1e-10)
    method = RandomTeacherDistill(32).fit_center(teacher_logits(teacher, x))
    assert method.center.abs().sum() > 0
    before = [p.clone() for p in teacher.parameters()]
    hist = train(student, method, (x, torch.zeros(64, dtype=torch.long)), teacher=teacher, epochs=8, batch_size=16,
                 seed=0, progress=False)
    assert hist["distill"][-1] < hist["distill"][0]
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))  # the teacher stays frozen
    assert any(not torch.equal(a, b) for a, b in zip(student.parameters(), teacher.parameters()))
    assert RandomTeacherDistill(32, centering=False).fit_center(teacher_logits(teacher, x)).center.abs().sum() == 0
