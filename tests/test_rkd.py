"""Relational KD: RKD-D / RKD-A properties (invariances, zero at equality, brute force, golden
values), no gradient into the teacher, kNN Recall@K on a hand-made case, and a short run."""

import itertools
import math

import pytest
import torch

from kdlib.losses import rkd_angle_loss, rkd_distance_loss
from kdlib.methods.rkd import RKD, embed, knn_recall_at_k
from kdlib.models import build
from kdlib.train import train


def seeded():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 4, generator=g), torch.randn(8, 6, generator=g)


def huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def brute_distance(s, t):
    """Eq. 4-5 by loops: mean Huber over all N^2 ordered pairs (diagonal included, as the official code)."""
    n = len(s)
    ds = [[float((s[i] - s[j]).norm()) for j in range(n)] for i in range(n)]
    dt = [[float((t[i] - t[j]).norm()) for j in range(n)] for i in range(n)]
    mus = sum(map(sum, ds)) / (n * (n - 1))
    mut = sum(map(sum, dt)) / (n * (n - 1))
    return sum(huber(ds[i][j] / mus, dt[i][j] / mut) for i in range(n) for j in range(n)) / n**2


def brute_angle(s, t):
    """Eq. 6-7 by loops: cos of the angle at j between i and k; degenerate (i = j or k = j) terms are 0."""
    def cos(e, i, j, k):
        if i == j or k == j:
            return 0.0
        a, b = e[i] - e[j], e[k] - e[j]
        return float(a @ b / (a.norm() * b.norm()))
    n = len(s)
    return sum(huber(cos(s, i, j, k), cos(t, i, j, k)) for i, j, k in itertools.product(range(n), repeat=3)) / n**3


def test_golden_values():
    s, t = seeded()
    # computed once with torch 2.13 (seeded tensors above)
    assert rkd_distance_loss(s, t).item() == pytest.approx(0.14091122150421143, rel=1e-5)
    assert rkd_angle_loss(s, t).item() == pytest.approx(0.15890635550022125, rel=1e-5)
    assert rkd_angle_loss(s, t, max_batch=5).item() == pytest.approx(0.11746105551719666, rel=1e-5)


def test_against_brute_force():
    s, t = seeded()
    assert rkd_distance_loss(s, t).item() == pytest.approx(brute_distance(s, t), rel=1e-5)
    assert rkd_angle_loss(s, t).item() == pytest.approx(brute_angle(s, t), rel=1e-5)
    assert rkd_angle_loss(s, t, max_batch=5).item() == pytest.approx(brute_angle(s[:5], t[:5]), rel=1e-5)


def test_invariant_to_scale_rotation_translation():
    s, t = seeded()
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)))
    for moved in (5.0 * s, 0.01 * s, s @ q, s + 3.0, 2.5 * s @ q - 1.0):
        assert rkd_distance_loss(moved, t).item() == pytest.approx(rkd_distance_loss(s, t).item(), rel=1e-4)
        assert rkd_angle_loss(moved, t).item() == pytest.approx(rkd_angle_loss(s, t).item(), rel=1e-4)
    # and on the teacher's side
    assert rkd_distance_loss(s, 10 * t).item() == pytest.approx(rkd_distance_loss(s, t).item(), rel=1e-4)
    assert rkd_angle_loss(s, 10 * t).item() == pytest.approx(rkd_angle_loss(s, t).item(), rel=1e-4)


def test_zero_at_identical_embeddings_positive_otherwise():
    s, t = seeded()
    assert rkd_distance_loss(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert rkd_angle_loss(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert rkd_distance_loss(s, t).item() > 1e-3 and rkd_angle_loss(s, t).item() > 1e-3
    # a plain MSE between distance matrices is not scale invariant: RKD's normalisation is what makes it so
    assert rkd_distance_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_gradient_reaches_student_not_teacher():
    s, t = seeded()
    s.requires_grad_(True)
    t.requires_grad_(True)
    (rkd_distance_loss(s, t) + rkd_angle_loss(s, t)).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


def test_method_terms_and_frozen_teacher():
    torch.manual_seed(0)
    student, teacher = build("mlp", in_dim=12, hidden=(20, 4), num_classes=3), build("mlp", in_dim=12, hidden=(30,), num_classes=3)
    x, y = torch.randn(10, 12), torch.randint(0, 3, (10,))
    terms = RKD(kd_weight=0.9, ce_weight=0.1)(student, teacher, (x, y))
    assert set(terms) == {"ce", "kd", "rkd_d", "rkd_a"}
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    # the weighted terms are the pure losses on the hooked embeddings
    s, t = embed(student, x), embed(teacher, x)
    student.train()
    terms = RKD(dist_weight=25.0, angle_weight=50.0)(student, teacher, (x, y))
    assert terms["rkd_d"].item() == pytest.approx(25 * rkd_distance_loss(s, t).item(), rel=1e-5)
    assert terms["rkd_a"].item() == pytest.approx(50 * rkd_angle_loss(s, t).item(), rel=1e-5)
    metric = RKD(dist_weight=1.0, angle_weight=2.0, ce_weight=0.0, layer="features.2", teacher_layer="features")
    assert set(metric(student, teacher, (x, y))) == {"rkd_d", "rkd_a"}
    with pytest.raises(ValueError, match="dist_weight"):
        RKD(dist_weight=-1.0)
    with pytest.raises(ValueError, match="teacher"):
        RKD()(student, None, (x, y))


def test_bad_input_is_named():
    s, t = seeded()
    with pytest.raises(ValueError, match="batch sizes"):
        rkd_distance_loss(s, t[:5])
    with pytest.raises(ValueError, match="max_batch"):
        rkd_angle_loss(s, t, max_batch=2)
    with pytest.raises(ValueError, match="k must be"):
        knn_recall_at_k(s, torch.zeros(8, dtype=torch.long), 8)


def test_recall_at_k_hand_made():
    # points on a line: 0, 1, 10, 11, 30 with labels a, b, b, b, a
    e = torch.tensor([[0.0], [1.0], [10.0], [11.0], [30.0]])
    y = torch.tensor([0, 1, 1, 1, 0])
    # nearest neighbours: 0->1 (miss), 1->0 (miss), 10->11 (hit), 11->10 (hit), 30->11 (miss)
    assert knn_recall_at_k(e, y, 1) == pytest.approx(40.0)
    # 2 nearest: 0->{1,10} miss, 1->{0,10} hit, 10->{11,1} hit, 11->{10,1} hit, 30->{11,10} miss
    assert knn_recall_at_k(e, y, 2) == pytest.approx(60.0)
    assert knn_recall_at_k(e, y, 4) == pytest.approx(100.0)


def test_short_run_learns_and_keeps_the_teacher():
    torch.manual_seed(0)
    x = torch.randn(120, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    teacher = build("mlp", in_dim=8, hidden=(32,), num_classes=3)
    before = [p.clone() for p in teacher.parameters()]
    student = build("mlp", in_dim=8, hidden=(16, 4), num_classes=3)
    hist = train(student, RKD(dist_weight=1.0, angle_weight=2.0, angle_max_batch=16), (x, y), teacher=teacher,
                 epochs=3, batch_size=40, lr=1e-2, progress=False)
    assert set(hist) >= {"loss", "ce", "rkd_d", "rkd_a"}
    assert all(math.isfinite(v) for v in hist["loss"]) and hist["loss"][-1] < hist["loss"][0]
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
