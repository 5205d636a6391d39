"""LELP chapter: subclass_kd_loss, the null-space / PCA pseudo-subclass pieces, and two-step runs."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib import data
from kdlib.losses import kd_loss, subclass_kd_loss
from kdlib.methods.lelp import (
    LELP,
    Aggregated,
    EmbeddingMSE,
    SubclassKD,
    SubclassTargets,
    aggregate_subclass_logits,
    null_space_projector,
    pseudo_subclass_targets,
    random_rotation,
    teacher_embeddings,
)
from kdlib.experiments.lelp import subclass_targets, train_subclass_students
from kdlib.models import build
from kdlib.train import evaluate, train


def _seeded():
    torch.manual_seed(0)
    student = torch.randn(6, 10)  # (N, C*k), C=2, k=5
    teacher = 3 * torch.randn(6, 2)  # (N, C)
    scores = torch.randn(6, 2, 5)  # (N, C, k)
    return student, teacher, scores


# ------------------------------------------------------------------------ the loss


def test_subclass_kd_loss_properties():
    s, z, sc = _seeded()
    q = pseudo_subclass_targets(z, sc, 4.0, 1.0)
    assert subclass_kd_loss(s, q, 4.0).item() >= 0
    # zero when the student's distribution at T is the target
    assert subclass_kd_loss(s, F.softmax(s / 4.0, -1), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    # zero target entries are allowed (0 log 0 = 0): one-hot targets give plain cross-entropy
    onehot = F.one_hot(torch.arange(6) % 10, 10).float()
    assert subclass_kd_loss(s, onehot, 1.0).item() == pytest.approx(F.cross_entropy(s, torch.arange(6) % 10).item(), rel=1e-6)


def test_one_subclass_per_class_is_kd():
    # k = 1: the pseudo-subclass target is the teacher's softmax, and the loss is Hinton's KD
    s, z, _ = _seeded()
    q = pseudo_subclass_targets(z, torch.zeros(6, 2, 1), 4.0, 1.0)
    assert subclass_kd_loss(s[:, :2], q, 4.0).item() == pytest.approx(kd_loss(s[:, :2], z, 4.0).item(), rel=1e-5)


def test_no_gradient_reaches_the_teacher():
    s, z, sc = _seeded()
    s, z, sc = s.requires_grad_(), z.requires_grad_(), sc.requires_grad_()
    with torch.no_grad():
        q = pseudo_subclass_targets(z, sc, 4.0, 1.0)
    subclass_kd_loss(s, q, 4.0).backward()
    assert z.grad is None and sc.grad is None and s.grad is not None


def test_golden_values():
    s, z, sc = _seeded()
    q = pseudo_subclass_targets(z, sc, 4.0, 1.0)
    assert subclass_kd_loss(s, q, 4.0).item() == pytest.approx(5.164129734039307, rel=1e-5)  # computed once
    assert subclass_kd_loss(s, q, 1.0).item() == pytest.approx(0.6557639241218567, rel=1e-5)  # computed once
    assert aggregate_subclass_logits(s, 2)[0].tolist() == pytest.approx([-0.7052368521690369, -0.6812020540237427], rel=1e-5)
    assert q[0, :3].tolist() == pytest.approx([0.015068138018250465, 0.03769133985042572, 0.16363903880119324], rel=1e-5)


# ------------------------------------------------------------------------ targets and projections


def test_targets_sum_to_teacher_class_distribution():
    _, z, sc = _seeded()
    q = pseudo_subclass_targets(z, sc, 2.0, 0.5)
    assert torch.allclose(q.sum(-1), torch.ones(6), atol=1e-6)
    assert torch.allclose(q.view(6, 2, 5).sum(-1), F.softmax(z / 2.0, -1), atol=1e-6)


def test_aggregation():
    s, _, _ = _seeded()
    agg = aggregate_subclass_logits(s, 2)
    assert torch.allclose(agg.exp().sum(-1), torch.ones(6), atol=1e-6)
    assert torch.allclose(aggregate_subclass_logits(s, 10), F.log_softmax(s, -1), atol=1e-6)  # k = 1


def test_null_space_projector():
    torch.manual_seed(0)
    w = torch.randn(2, 8)
    p = null_space_projector(w)
    assert torch.allclose(w @ p, torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(p @ p, p, atol=1e-5) and torch.allclose(p, p.T, atol=1e-6)
    assert p.trace().item() == pytest.approx(6.0, abs=1e-4)  # D - rank(W)


def test_random_rotation_is_orthonormal():
    q = random_rotation(5, torch.Generator().manual_seed(0))
    assert torch.allclose(q @ q.T, torch.eye(5), atol=1e-5)


def _digits_bin(n=200):
    x, y = data.digits()["train"]
    return x[:n], y[:n] % 2, y[:n] // 2  # (x, class, subclass)


def test_lelp_fit_geometry():
    x, y, _ = _digits_bin()
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32], num_classes=2).eval()
    method = LELP(num_classes=2, subclasses=4, seed=0).fit(teacher, x, y)
    d = method.directions  # (C, D, k)
    assert d.shape == (2, 32, 4)
    for c in range(2):
        assert torch.allclose(d[c].T @ d[c], torch.eye(4), atol=1e-4)  # rotated PCA basis stays orthonormal
    assert (teacher.fc.weight @ d).abs().max().item() < 1e-4  # directions lie in the null space of W
    emb = teacher_embeddings(teacher, x, "features")
    scores = method.scores(emb)
    assert scores.shape == (200, 2, 4)
    for c in range(2):  # standardised: the k scores of a class's own points have unit mean variance
        own = scores[y == c, c]
        assert own.var(0, unbiased=True).mean().item() == pytest.approx(1.0, rel=1e-3)


# ------------------------------------------------------------------------ two-step runs


@pytest.mark.parametrize("kind", ["lelp", "kmeans", "oracle", "emb"])
def test_two_step_run(kind):
    x, y, sub = _digits_bin(128)
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32], num_classes=2).eval()
    if kind == "emb":
        student = build("mlp", hidden=[16], num_classes=2)
        method = EmbeddingMSE(student_dim=16, teacher_dim=32)
    else:
        student = build("mlp", hidden=[16], num_classes=2 * 5)
        method = (LELP(2, 5) if kind == "lelp" else SubclassKD(2, 5, mode=kind))
        if kind != "oracle":
            method.fit(teacher, x, y)
    before = [p.detach().clone() for p in teacher.parameters()]
    history = train(student, method, (x, y, sub), teacher=teacher, epochs=1, batch_size=64, progress=False)
    expected = {"lelp": "kd_sub", "kmeans": "kd_sub", "oracle": "ce_sub", "emb": "emb"}[kind]
    assert expected in history and all(math.isfinite(v) for v in history["loss"])
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    model = student if kind == "emb" else Aggregated(student, 2)
    metrics = evaluate(model, (x, y), teacher)
    assert 0 <= metrics["acc"] <= 100 and math.isfinite(metrics["nll"])
    if kind != "emb":
        assert torch.allclose(method.predict(student, x), model(x))


# ------------------------------------------------------------------------ precomputed targets, seeds in one batch

RECIPE = dict(epochs=2, batch_size=32, lr=1e-2, optimizer="adam", progress=False)


def _max_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def _student(seed, k=5):
    torch.manual_seed(seed)
    return build("mlp", hidden=[16], num_classes=2 * k)


@pytest.mark.parametrize("kind", ["lelp", "kmeans", "oracle"])
def test_precomputed_targets_train_the_same_student(kind):
    x, y, sub = _digits_bin(128)
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32], num_classes=2).eval()
    method = LELP(2, 5) if kind == "lelp" else SubclassKD(2, 5, mode=kind)
    if kind != "oracle":
        method.fit(teacher, x, y)
    q = subclass_targets(method, teacher, (x, y, sub))
    assert q.shape == (128, 10) and torch.allclose(q.sum(-1), torch.ones(128))
    if kind == "oracle":
        assert torch.equal(q.argmax(-1), y * 5 + sub)
    a, b = _student(1), _student(1)
    train(a, method, (x, y, sub), teacher=teacher, seed=1, **RECIPE)
    train(b, SubclassTargets(1.0 if kind == "oracle" else method.temperature), (x, q), seed=1, **RECIPE)
    assert _max_diff(a, b) < 1e-4  # the same loss, the teacher's part computed once


def test_train_subclass_students_batched_equals_sequential_and_uses_each_seeds_method():
    x, y, sub = _digits_bin(128)
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32], num_classes=2).eval()
    fitted = {s: LELP(2, 5, seed=s).fit(teacher, x, y) for s in (1, 2)}
    batched = train_subclass_students(_student, lambda s: fitted[s], teacher, lambda s: (x, y, sub), [1, 2], **RECIPE)
    alone = train_subclass_students(_student, lambda s: fitted[s], teacher, lambda s: (x, y, sub), [1, 2],
                                    batched=False, **RECIPE)
    assert all(_max_diff(a, b) == 0.0 for a, b in zip(batched, alone))  # bit for bit at one thread
    ref = _student(2)
    train(ref, fitted[2], (x, y, sub), teacher=teacher, seed=2, **RECIPE)
    assert _max_diff(ref, batched[1]) < 1e-4  # seed 2 was taught by its own fitted LELP
    with pytest.raises(ValueError, match="label_weight"):
        train_subclass_students(_student, lambda s: LELP(2, 5, label_weight=1.0), teacher, lambda s: (x, y, sub), [1],
                                **RECIPE)


def test_train_subclass_students_with_augmentation_keeps_the_teacher_in_the_loop():
    x, y, sub = _digits_bin(64)
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[32], num_classes=2).eval()
    method = LELP(2, 5).fit(teacher, x, y)

    def jitter(batch_x, generator):
        return batch_x + 0.01 * torch.randn(batch_x.shape, generator=generator)

    (student,) = train_subclass_students(_student, lambda s: method, teacher, lambda s: (x, y, sub), [3],
                                         augment=jitter, **RECIPE)
    assert all(torch.isfinite(p).all() for p in student.parameters())
