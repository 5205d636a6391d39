"""PESF-KD: the adapter, the adapted teacher, the released-code swap, the adapter's learning rate,
the DML baseline's pair and short runs."""

import math

import pytest
import torch

from kdlib.losses import cross_entropy, entropy, kd_loss
from kdlib.methods import METHODS
from kdlib.methods.dml import DML
from kdlib.methods.pesf import (
    PESF, AdaptedTeacher, LogitAdapter, dml_pair, feature_dim, released_code_div_loss, swap_argmax_with_target,
)
from kdlib.tasks import make_model
from kdlib.train import train


@pytest.fixture
def setup():
    torch.manual_seed(0)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    teacher = make_model("cnn1d", 10, seed=0, dataset="mnist1d").eval()
    return x, y, teacher


def student():
    return make_model("mlp", 10, [32], seed=1, dataset="mnist1d")


def test_registered():
    assert METHODS["pesf"] is PESF and METHODS["dml"] is DML


def test_adapter_shape_and_zero_init(setup):
    x, _, teacher = setup
    assert feature_dim(teacher, x) == 125
    a = LogitAdapter(125, 10)
    out = a(torch.randn(8, 25, 5))  # flattened inside
    assert out.shape == (8, 10) and torch.equal(out, torch.zeros(8, 10))
    assert not torch.equal(LogitAdapter(125, 10, zero_init=False)(torch.randn(8, 125)), torch.zeros(8, 10))
    with pytest.raises(ValueError, match="num_classes"):
        LogitAdapter(125, 1)


def test_adapted_teacher_subtracts_the_adapter(setup):
    x, _, teacher = setup
    a = LogitAdapter(125, 10, zero_init=False)
    wrapped = AdaptedTeacher(teacher, a)
    with torch.no_grad():
        h = teacher.features(x.unsqueeze(1))
        expected = teacher(x) - a(h)
    torch.testing.assert_close(wrapped(x), expected)
    wrapped.train()
    assert not teacher.training  # the frozen teacher never leaves eval mode


def test_zero_frozen_adapter_is_kd(setup):
    x, y, teacher = setup
    s = student()
    m = PESF(125, 10, temperature=4.0, train_adapter=False)
    terms = m(s, teacher, (x, y))
    z_s, z_t = s(x), teacher(x)
    assert set(terms) == {"ce", "kd"}
    torch.testing.assert_close(terms["kd"], kd_loss(z_s, z_t, 4.0))
    torch.testing.assert_close(terms["ce"], cross_entropy(z_s, y))
    assert m.teacher_side_parameters() == 0
    # the trainable adapter starts at zero too: the same KD value at step 0, plus the teacher's CE
    m2 = PESF(125, 10, temperature=4.0)
    t2 = m2(s, teacher, (x, y))
    torch.testing.assert_close(t2["kd"], terms["kd"])
    torch.testing.assert_close(t2["teacher_ce"], cross_entropy(z_t, y))


def test_gradients_reach_the_adapter_not_the_teacher(setup):
    x, y, teacher = setup
    teacher.requires_grad_(False)
    s = student()
    m = PESF(125, 10)
    sum(m(s, teacher, (x, y)).values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert m.adapter.adapter[2].weight.grad.abs().sum() > 0  # zero-initialised last layer still learns
    assert all(p.grad is not None for p in s.parameters())
    assert m.teacher_side_parameters() == sum(p.numel() for p in m.adapter.parameters())


def test_swap_golden():
    z = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]])
    out = swap_argmax_with_target(z, torch.tensor([0, 1]))
    assert torch.equal(out, torch.tensor([[3.0, 1.0, 0.0], [0.0, 5.0, 2.0]]))
    assert torch.equal(z, torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]]))  # input untouched


def test_released_code_student_term_ignores_the_adapter_when_teacher_is_right():
    torch.manual_seed(0)
    z_s, z_t = torch.randn(16, 10, requires_grad=True), torch.randn(16, 10)
    y = z_t.argmax(-1)  # the teacher is right everywhere: the swap changes nothing
    z_adapted = z_t - torch.randn(16, 10)
    loss = released_code_div_loss(z_s, z_t, z_adapted, y, 6.0)
    g, = torch.autograd.grad(loss, z_s)
    g_kd, = torch.autograd.grad(kd_loss(z_s, z_t, 6.0), z_s)
    torch.testing.assert_close(g, g_kd)  # the student's gradient is plain KD's: the adapter never reaches it


def test_predictive_entropy_limits():
    assert math.isclose(float(entropy(torch.zeros(1, 10))[0]), math.log(10), rel_tol=1e-6)
    assert float(entropy(torch.tensor([[50.0, 0.0, 0.0]]))[0]) < 1e-12
    assert torch.all(entropy(torch.randn(32, 10)) >= 0)


def test_adapter_learns_in_its_own_group(setup):
    x, y, teacher = setup
    s = student()
    groups = PESF(125, 10, adapter_lr_scale=0.1).param_groups(s, 0.01)
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.001])
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in s.parameters()]
    with pytest.raises(ValueError, match="adapter_lr_scale"):
        PESF(125, 10, adapter_lr_scale=0.0)


def test_dml_trains_both_and_leaves_the_original_teacher(setup):
    x, y, teacher = setup
    before = [p.detach().clone() for p in teacher.parameters()]
    pair = dml_pair(teacher, student(), teacher_lr_scale=0.1)
    torch.testing.assert_close(pair(x), pair["student"](x))
    assert [g["lr"] for g in DML().param_groups(pair, 0.01)] == pytest.approx([0.01, 0.001])  # the copy: lr x 0.1
    copy_before = [p.detach().clone() for p in pair["teacher"].parameters()]
    m = DML(temperature=4.0)
    hist = train(pair, m, (x, y), teacher=None, epochs=2, batch_size=32, progress=False)
    assert set(hist) >= {"ce_student", "kl_student", "ce_teacher", "kl_teacher"}
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(copy_before, pair["teacher"].parameters()))
    assert sum(p.numel() for p in pair["teacher"].parameters() if p.requires_grad) == sum(
        p.numel() for p in teacher.parameters())
    assert len(hist["entropy_teacher"]) == len(hist["entropy_student"]) == 2  # the chapter's entropy trace


@pytest.mark.parametrize("variant", ["kd", "pesf", "released_code"])
def test_short_pesf_runs(setup, variant):
    x, y, teacher = setup
    teacher_before = [p.detach().clone() for p in teacher.parameters()]
    m = PESF(125, 10, train_adapter=variant != "kd", released_code=variant == "released_code")
    adapter_before = [p.detach().clone() for p in m.adapter.parameters()]
    hist = train(student(), m, (x, y), teacher=teacher, epochs=2, batch_size=32, progress=False)
    assert all(math.isfinite(v) for v in hist["loss"])
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, teacher.parameters()))
    moved = any(not torch.equal(a, b) for a, b in zip(adapter_before, m.adapter.parameters()))
    assert moved == (variant != "kd")
    trace = list(zip(hist["entropy_teacher"], hist["entropy_student"]))  # per-epoch means (Method.log)
    assert len(trace) == 2 and all(h >= 0 for ht, hs in trace for h in (ht, hs))
