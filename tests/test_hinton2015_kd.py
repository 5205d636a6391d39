"""Hinton KD chapter: the KD and logit-matching methods, the high-T limit with its factor C, a short run.

The loss `kd_loss` itself (KL with T^2, golden value, no gradient into the teacher) is tested in
test_losses.py; here: what the chapter states about the methods and their limit.
"""

import pytest
import torch

from kdlib import data
from kdlib.batched import train_seeds
from kdlib.losses import kd_loss, logit_mse
from kdlib.methods import KD, LogitMatching
from kdlib.models import build
from kdlib.tasks import make_model

C = 10
GOLDEN_KD_T20 = 3.562798023223877  # computed once with torch 2.13 (seeded tensors below)
GOLDEN_LM = 38.06683349609375


def seeded(zero_mean_difference=False):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(16, C, generator=g), 3 * torch.randn(16, C, generator=g)
    if zero_mean_difference:
        student = student - (student - teacher).mean(-1, keepdim=True)
    return student, teacher, torch.randint(0, C, (16,), generator=g)


def constant(logits):
    """A 'model' that returns fixed logits whatever the input."""
    return lambda x: logits


def test_kd_terms_and_weights():
    s, t, y = seeded()
    terms = KD(temperature=4.0, alpha=0.9)(constant(s), constant(t), (None, y))
    assert set(terms) == {"kd", "ce"}
    assert terms["kd"].item() == pytest.approx(0.9 * kd_loss(s, t, 4.0).item(), rel=1e-6)
    assert terms["ce"].item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(s, y).item(), rel=1e-6)
    soft_only = KD(temperature=20.0, alpha=1.0)(constant(s), constant(t), (None, y))  # the missing-class student
    assert set(soft_only) == {"kd"}


def test_golden_values():
    s, t, y = seeded()
    assert kd_loss(s, t, 20.0).item() == pytest.approx(GOLDEN_KD_T20, rel=1e-5)
    assert LogitMatching()(constant(s), constant(t), (None, y))["mse"].item() == pytest.approx(GOLDEN_LM, rel=1e-5)


def test_logit_matching_is_c_times_the_high_t_limit_of_kd():
    # Method prose: T^2 KL -> (1 / 2C) sum (d - mean d)^2, so 0.5 ||d||^2 = C * limit when mean d = 0
    s, t, _ = seeded(zero_mean_difference=True)
    assert (C * kd_loss(s, t, 100.0)).item() == pytest.approx(logit_mse(s, t).item(), rel=2e-3)
    assert (C * kd_loss(s, t, 1.0)).item() != pytest.approx(logit_mse(s, t).item(), rel=0.1)  # not at T = 1


def test_logit_matching_adds_the_mean_offset_that_kd_cannot_see():
    s, t, _ = seeded(zero_mean_difference=True)
    shift = 2.0
    kd_shifted = kd_loss(s + shift, t, 100.0)  # softmax ignores a shift shared by all classes
    assert kd_shifted.item() == pytest.approx(kd_loss(s, t, 100.0).item(), rel=1e-4)
    lm_shifted = logit_mse(s + shift, t)
    assert lm_shifted.item() == pytest.approx(logit_mse(s, t).item() + C / 2 * shift**2, rel=1e-5)


def test_high_t_gradient_is_logit_matching_gradient_over_c():
    s, t, _ = seeded(zero_mean_difference=True)
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    kd_loss(s1, t, 100.0).backward()
    logit_mse(s2, t).backward()
    error = ((C * s1.grad - s2.grad).abs().max() / s2.grad.abs().max()).item()
    assert error < 0.05  # the O(d / T) correction, d up to ~10 here
    s3 = s.clone().requires_grad_()
    kd_loss(s3, t, 1.0).backward()
    assert ((C * s3.grad - s2.grad).abs().max() / s2.grad.abs().max()).item() > 0.5  # far from it at T = 1


def _train_logit_matching(scale, optimizer):
    g = torch.Generator().manual_seed(1)
    x, target = torch.randn(32, 64, generator=g), torch.randn(32, C, generator=g)
    model = make_model("mlp", C, [16], seed=0)
    opt = optimizer(model.parameters())
    for _ in range(20):
        opt.zero_grad()
        (scale * logit_mse(model(x), target)).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_adam_is_blind_to_the_factor_c_and_sgd_is_not():
    # the prose: a constant factor on the loss leaves Adam's steps unchanged (up to eps); SGD's lr absorbs it
    adam = lambda p: torch.optim.Adam(p, lr=1e-2)  # noqa: E731
    sgd = lambda p: torch.optim.SGD(p, lr=1e-3)  # noqa: E731
    assert (_train_logit_matching(1.0, adam) - _train_logit_matching(1 / C, adam)).abs().max() < 1e-4
    assert (_train_logit_matching(1.0, sgd) - _train_logit_matching(1 / C, sgd)).abs().max() > 1e-2


def test_no_gradient_into_the_teacher():
    torch.manual_seed(0)
    teacher, student = build("mlp", hidden=[8], num_classes=C), build("mlp", hidden=[8], num_classes=C)
    x, y = torch.randn(16, 64), torch.randint(0, C, (16,))
    for method in (KD(), LogitMatching()):
        student.zero_grad()
        sum(method(student, teacher, (x, y)).values()).backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert all(p.grad is not None for p in student.parameters())


def test_short_batched_run_on_mnist1d():
    task_train = data.stratified_subset(data.mnist1d()["train"], 0.1, seed=0)
    teacher = build("cnn1d", num_classes=C)
    students, histories = train_seeds(lambda s: make_model("mlp", C, [100, 100], seed=s, dataset="mnist1d"),
                                      KD(temperature=4.0), lambda s: task_train, [0, 1], teacher=teacher,
                                      epochs=2, batch_size=100, lr=1e-2, progress=False)
    assert len(students) == 2 and all(len(h["loss"]) == 2 for h in histories)
    assert all(torch.isfinite(torch.tensor(h["kd"])).all() for h in histories)
    w0, w1 = (next(st.parameters()).detach() for st in students)
    assert not torch.equal(w0, w1)  # each seed its own initialisation
