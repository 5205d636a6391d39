"""ORC: the feedback miner (exactly the misclassified samples), the role change (the best student is
promoted), the mixup weights of intensive teaching, golden values, no gradient into the targets, a frozen
pivot stays unchanged, and short runs of ORC and the group DML baseline (`kdlib.methods.dml.DML`)."""

import copy

import pytest
import torch

from kdlib import data
from kdlib.losses import cross_entropy, kd_loss
from kdlib.cohort import Cohort
from kdlib.methods.dml import DML
from kdlib.methods.orc import (ORC, feedback_mask, mix_with_feedback, mixup_feedback_loss, rank_students,
                               student_group)
from kdlib.models.small import MLP
from kdlib.train import evaluate, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def logits_with_errors(y, wrong, seed=0):
    """(N, C) logits whose argmax is y except at the indices in `wrong` (there: y + 1 mod C)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(y), 10, generator=g)
    pred = y.clone()
    pred[wrong] = (y[wrong] + 1) % 10
    z[torch.arange(len(y)), pred] += 10
    return z


def test_feedback_samples_are_exactly_the_misclassified_ones():
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    zs = [logits_with_errors(y, [1, 4], 0), logits_with_errors(y, [4, 6], 1), logits_with_errors(y, [], 2)]
    assert feedback_mask(zs, y).tolist() == [False, True, False, False, True, False, True, False]
    assert not feedback_mask([logits_with_errors(y, [], 3)] * 2, y).any()


def test_role_change_promotes_the_best_student():
    y = torch.arange(10)
    zs = [logits_with_errors(y, [0, 1, 2], 0), logits_with_errors(y, [5], 1), logits_with_errors(y, [3, 4], 2)]
    assert rank_students(zs, y).tolist() == [1, 2, 0]
    # a tie in accuracy goes to the lower cross-entropy
    sharp, soft = logits_with_errors(y, [7], 3), logits_with_errors(y, [7], 3) / 10
    assert cross_entropy(sharp, y) < cross_entropy(soft, y)
    assert rank_students([soft, sharp], y).tolist() == [1, 0]


def test_mixup_weights_and_pairs():
    x = torch.arange(6.0).unsqueeze(1)
    fb = torch.tensor([[100.0], [200.0]])
    g = torch.Generator().manual_seed(0)
    x_mix, idx = mix_with_feedback(x, fb, 0.25, generator=g)
    assert torch.allclose(x_mix, 0.25 * x + 0.75 * fb[idx])
    assert set(idx.tolist()) <= {0, 1} and len(idx) == 6
    with pytest.raises(ValueError, match="feedback_x"):
        mix_with_feedback(x, fb[:0], 0.5)


def test_mixup_feedback_loss_limits_and_golden_value():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 5, generator=g)
    ya, yb = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 0, 1])
    assert torch.allclose(mixup_feedback_loss(z, ya, yb, 1.0), cross_entropy(z, ya))
    assert torch.allclose(mixup_feedback_loss(z, ya, yb, 0.0), cross_entropy(z, yb))
    mid = mixup_feedback_loss(z, ya, yb, 0.3)
    assert torch.allclose(mid, 0.3 * cross_entropy(z, ya) + 0.7 * cross_entropy(z, yb))
    assert mid.item() == pytest.approx(float(0.3 * cross_entropy(z, ya) + 0.7 * cross_entropy(z, yb)), abs=1e-7)
    assert mid.item() >= 0


def group(seed=0, pivot=True):
    torch.manual_seed(seed)
    students = [MLP(hidden=(8,)), MLP(hidden=(16,)), MLP(hidden=(32,))]
    return student_group(students, MLP(hidden=(64,)) if pivot else None)


def test_orc_terms_and_no_gradient_into_targets(digits):
    x, y = digits["train"][0][:32], digits["train"][1][:32]
    g = group()
    terms = ORC(beta=0.5, temperature=4.0)(g, None, (x, y))
    assert set(terms) == {"intensive", "ce_tt", "kd_tt_pivot", "ce_group", "kd_group_tt", "kd_group_pivot"}
    assert all(v.item() >= 0 for v in terms.values())
    # the temporary teacher's term has no gradient into the other students, the group's none into the TT
    top = int(rank_students([s(x) for s in g.networks], y)[0])
    terms["kd_group_tt"].backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in g.networks[top].parameters())
    assert all(p.grad is None for p in g.pivot.parameters())
    g.zero_grad(set_to_none=True)
    terms["intensive"].backward()
    assert all(p.grad is None for s in g.networks for p in s.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.pivot.parameters())


def test_orc_golden_group_terms(digits):
    x, y = digits["train"][0][:32], digits["train"][1][:32]
    g = group()
    terms = ORC(beta=0.25, temperature=2.0)(g, None, (x, y))
    zs = [s(x) for s in g.networks]
    top = int(rank_students(zs, y)[0])
    zp = g.pivot(x)
    others = [i for i in range(3) if i != top]
    want = 0.25 * sum(kd_loss(zs[i], zp, 2.0) for i in others)
    assert terms["kd_group_pivot"].item() == pytest.approx(want.item(), rel=1e-6)
    assert terms["ce_tt"].item() == pytest.approx(0.75 * cross_entropy(zs[top], y).item(), rel=1e-6)
    assert g.promotions.sum().item() == 1 and g.promotions[top].item() == 1


def test_frozen_pivot_errors_and_update_pivot_false(digits):
    x, y = digits["train"][0][:32], digits["train"][1][:32]
    g = group()
    g.pivot.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        ORC()(g, None, (x, y))
    assert "intensive" not in ORC(update_pivot=False)(g, None, (x, y))
    with pytest.raises(TypeError, match="student_group"):
        ORC()(MLP(), None, (x, y))
    with pytest.raises(TypeError, match="student_group"):
        ORC()(Cohort([MLP(), MLP()]), None, (x, y))  # a cohort without the promotion counts
    with pytest.raises(ValueError, match="beta"):
        ORC(beta=1.5)


def test_short_runs_train_the_group_and_count_promotions(digits):
    train_set = digits["train"][:2]
    g = group(1)
    pivot_before = copy.deepcopy(g.pivot.state_dict())
    hist = train(g, ORC(), train_set, epochs=2, batch_size=64, lr=1e-2, seed=0, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    steps = 2 * -(-len(train_set[0]) // 64)
    assert g.promotions.sum().item() == steps
    assert any(not torch.equal(v, g.pivot.state_dict()[k]) for k, v in pivot_before.items())
    for s in g.networks:
        assert evaluate(s, digits["test"])["acc"] > 30
    d = group(2, pivot=False)
    hist = train(d, DML(), train_set, epochs=2, batch_size=64, lr=1e-2, seed=0, progress=False)
    assert hist["loss"][-1] < hist["loss"][0] and d.promotions.sum().item() == 0
    assert evaluate(d, digits["test"])["acc"] > 30  # the group's forward is the scored student


def test_group_validation():
    with pytest.raises(ValueError, match="at least 2"):
        student_group([MLP()])
    with pytest.raises(ValueError, match="scored"):
        student_group([MLP(), MLP()], scored=2)
    g = student_group([MLP(), MLP()], scored=1)
    assert g.names == ("s1", "s2") and g.pivot is None and g.promotions.tolist() == [0, 0]
