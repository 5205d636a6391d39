"""Decoupled KD method: terms equal dkd_loss, mdistiller's warm-up, golden values, a short run.

The loss itself (dkd_terms / dkd_loss: decomposition, golden value) is tested in test_losses.py;
here: what the method adds on top of it.
"""

import pytest
import torch
import torch.nn.functional as F

from kdlib import data
from kdlib.losses import dkd_loss, dkd_terms, kd_loss
from kdlib.methods.dkd import DKD
from kdlib.models import build
from kdlib.train import train


def seeded():
    torch.manual_seed(0)
    student, teacher = torch.randn(16, 10), 3 * torch.randn(16, 10)
    target = torch.randint(0, 10, (16,))
    return student, teacher, target


def constant(logits):
    """A 'model' that returns fixed logits whatever the input."""
    return lambda x: logits


def test_golden_dkd_loss_and_kd():
    s, t, y = seeded()
    # computed once with torch 2.13 (seeded tensors above)
    assert dkd_loss(s, t, y, 1.0, 8.0, 4.0).item() == pytest.approx(25.601778030395508, rel=1e-5)
    assert kd_loss(s, t, 4.0).item() == pytest.approx(3.3222787380218506, rel=1e-5)


def test_golden_method_terms_mid_warmup():
    s, t, y = seeded()
    method = DKD()
    method.epoch = 4  # 0-based: the fifth epoch, warm-up factor 5 / 20
    terms = method(constant(s), constant(t), (None, y))
    assert set(terms) == {"ce", "tckd", "nckd"}
    # computed once with torch 2.13 (seeded tensors above)
    assert terms["ce"].item() == pytest.approx(2.7196130752563477, rel=1e-5)
    assert terms["tckd"].item() == pytest.approx(0.13301020860671997, rel=1e-5)
    assert terms["nckd"].item() == pytest.approx(6.2674336433410645, rel=1e-5)


def test_terms_sum_to_dkd_loss_after_warmup():
    s, t, y = seeded()
    for alpha, beta in [(1.0, 8.0), (1.0, 2.0), (0.5, 6.0)]:
        method = DKD(alpha=alpha, beta=beta, ce_weight=0.0)
        method.epoch = 50
        terms = method(constant(s), constant(t), (None, y))
        assert "ce" not in terms
        total = sum(terms.values())
        assert total.item() == pytest.approx(dkd_loss(s, t, y, alpha, beta, 4.0).item(), rel=1e-6)
        assert total.item() >= 0


def test_warmup_matches_mdistiller_one_based_epochs():
    # mdistiller: min(epoch / 20, 1) with epoch = 1, 2, ...; ours: the same with epoch + 1
    method = DKD(warmup_epochs=20)
    for epoch0 in range(30):
        method.epoch = epoch0
        assert method.warmup() == pytest.approx(min((epoch0 + 1) / 20, 1.0))
    method.epoch = 0
    assert method.warmup() == pytest.approx(1 / 20)
    assert DKD(warmup_epochs=0).warmup() == 1.0


def test_ablations_drop_a_term():
    s, t, y = seeded()
    tckd_only = DKD(alpha=1.0, beta=0.0)(constant(s), constant(t), (None, y))
    nckd_only = DKD(alpha=0.0, beta=1.0)(constant(s), constant(t), (None, y))
    assert set(tckd_only) == {"ce", "tckd"} and set(nckd_only) == {"ce", "nckd"}
    assert tckd_only["ce"].item() == pytest.approx(F.cross_entropy(s, y).item())


def test_kd_is_dkd_with_beta_one_minus_pgt():
    # Eq. 7 through the method's pieces: KD = T^2 mean(TCKD + (1 - p_t,gt) NCKD)
    s, t, y = seeded()
    tckd, nckd, p_gt = dkd_terms(s, t, y, 4.0)
    assert (16 * (tckd + (1 - p_gt) * nckd).mean()).item() == pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-5)


def test_zero_at_equality_and_no_gradient_into_teacher():
    s, _, y = seeded()
    method = DKD(ce_weight=0.0)
    method.epoch = 100
    terms = method(constant(s), constant(s.clone()), (None, y))
    assert sum(terms.values()).item() == pytest.approx(0.0, abs=1e-6)

    teacher = build("mlp", hidden=[8], num_classes=10)
    student = build("mlp", hidden=[8], num_classes=10)
    x = torch.randn(16, 64)
    sum(DKD()(student, teacher, (x, y)).values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_two_epoch_run_through_the_loop():
    torch.manual_seed(0)
    split = data.digits()["train"]
    subset = data.stratified_subset(split, 0.1, seed=0)
    teacher = build("mlp", hidden=[16], num_classes=10)
    student = build("mlp", hidden=[8], num_classes=10)
    history = train(student, DKD(), subset, teacher=teacher, epochs=2, batch_size=32, progress=False)
    for name in ("loss", "ce", "tckd", "nckd"):
        assert name in history and len(history[name]) == 2
        assert all(torch.isfinite(torch.tensor(history[name])))


def test_batched_seeds_on_mnist1d_with_the_cpu_warmup():
    from kdlib.batched import train_seeds
    from kdlib.tasks import make_model

    split = data.stratified_subset(data.mnist1d()["train"], 0.1, seed=0)
    teacher = build("cnn1d", num_classes=10)
    method = DKD(warmup_epochs=2)
    students, histories = train_seeds(lambda s: make_model("mlp", 10, [100, 100], seed=s, dataset="mnist1d"),
                                      method, lambda s: split, [0, 1], teacher=teacher, epochs=3,
                                      batch_size=100, lr=1e-2, progress=False)
    assert len(students) == 2
    for h in histories:
        assert len(h["nckd"]) == 3 and all(torch.isfinite(torch.tensor(h["nckd"])))
