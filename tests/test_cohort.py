"""The loop's hooks for networks trained together: the Cohort container, Method.param_groups (one
group by default, in the former parameter order; a group per lr scale kept through the schedule) and
Method.log (per-step values collected into the history as per-epoch means)."""

import pytest
import torch

from kdlib.cohort import Cohort
from kdlib.method import CE, Method
from kdlib.methods import KD
from kdlib.models.small import MLP
from kdlib.train import train


def nets(*widths, seed=0):
    torch.manual_seed(seed)
    return [MLP(hidden=(w,)) for w in widths]


def test_cohort_names_scoring_and_extras():
    a, b, pivot = nets(8, 16, 32)
    c = Cohort([a, b], names=("small", "large"), scored=1, pivot=pivot)
    x = torch.randn(4, 64)
    assert torch.equal(c(x), b(x)) and c["small"] is a and c[1] is b and len(c) == 2
    assert c.pivot is pivot and Cohort([a, b]).names == ("net1", "net2")
    assert Cohort([a, b], pivot=None).pivot is None
    # the extras are trained with the cohort: their parameters come after the networks'
    assert [id(p) for p in c.parameters()] == [id(p) for m in (a, b, pivot) for p in m.parameters()]
    with pytest.raises(KeyError, match="tiny"):
        c["tiny"]
    for bad, match in ((dict(networks=[a]), "at least 2"), (dict(networks=[a, b], names=("x", "x")), "names"),
                       (dict(networks=[a, b], scored=2), "scored"), (dict(networks=[a, b], lr_scales=(1, 0)), "lr_scales")):
        with pytest.raises(ValueError, match=match):
            Cohort(**bad)


def test_default_param_groups_is_one_group_student_then_method():
    student, = nets(8)

    class WithHead(CE):  # a method with a trainable part of its own
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(3, 3)

    m = WithHead()
    groups = m.param_groups(student, 0.1)
    assert len(groups) == 1 and groups[0]["lr"] == 0.1
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in [*student.parameters(), *m.parameters()]]
    cohort = Cohort(nets(8, 16))  # every lr scale 1: still one group, in the cohort's order
    groups = CE().param_groups(cohort, 0.1)
    assert len(groups) == 1 and [id(p) for p in groups[0]["params"]] == [id(p) for p in cohort.parameters()]


class SumOfWeights(Method):
    """Loss = the sum of every weight: each gradient is 1, so an SGD step moves a weight by -lr exactly."""

    needs_teacher = False

    def forward(self, student, teacher, batch):
        return {"w": sum(p.sum() for p in student.parameters())}


def test_a_scaled_group_keeps_its_ratio_through_the_schedule():
    a, b = nets(8, 8)
    cohort = Cohort([a, b], lr_scales=(1.0, 0.25))
    groups = SumOfWeights().param_groups(cohort, 0.1)
    assert [g["lr"] for g in groups] == [0.1, 0.025]
    before = [next(a.parameters()).detach().clone(), next(b.parameters()).detach().clone()]
    data = (torch.randn(8, 64), torch.zeros(8, dtype=torch.long))
    hist = train(cohort, SumOfWeights(), data, epochs=2, batch_size=8, lr=0.1, optimizer="sgd", momentum=0.0,
                 lr_milestones=[1], progress=False)
    assert hist["lr"] == pytest.approx([0.1, 0.01])  # the base lr's schedule, as before
    moved_a = before[0] - next(a.parameters()).detach()
    moved_b = before[1] - next(b.parameters()).detach()
    torch.testing.assert_close(moved_a, torch.full_like(moved_a, 0.1 + 0.01))
    torch.testing.assert_close(moved_b, torch.full_like(moved_b, 0.25 * (0.1 + 0.01)))


class Logging(CE):
    """CE that logs the step number and a constant (a diagnostic, not a loss term)."""

    def terms_from_logits(self, student_logits, teacher_logits, target):
        self.log("step_seen", float(self.step))
        self.log("const", torch.tensor(2.0))
        return super().terms_from_logits(student_logits, teacher_logits, target)


def test_logged_values_become_per_epoch_means_beside_the_terms():
    student, = nets(8)
    data = (torch.randn(32, 64), torch.randint(0, 10, (32,)))
    m = Logging()
    hist = train(student, m, data, epochs=2, batch_size=8, progress=False)  # 4 steps per epoch
    assert hist["step_seen"] == pytest.approx([1.5, 5.5]) and hist["const"] == [2.0, 2.0]
    assert hist["loss"] == pytest.approx(hist["ce"])  # logged values are not added to the loss
    assert m.pop_logged() == {}  # the loop took every value
    with pytest.raises(ValueError, match="loop's own"):
        m.log("loss", 1.0)


def test_a_logged_name_may_not_hide_a_term():
    class Clash(CE):
        def terms_from_logits(self, student_logits, teacher_logits, target):
            self.log("ce", 0.0)
            return super().terms_from_logits(student_logits, teacher_logits, target)

    with pytest.raises(ValueError, match="also a loss term"):
        train(nets(8)[0], Clash(), (torch.randn(8, 64), torch.zeros(8, dtype=torch.long)), epochs=1, progress=False)


def test_methods_that_do_not_override_train_exactly_as_before():
    """KD with a teacher: the loop with param_groups gives the history it gave with a flat list."""
    teacher, = nets(32, seed=1)
    data = (torch.randn(64, 64), torch.randint(0, 10, (64,)))
    student, = nets(8, seed=2)
    ref, = nets(8, seed=2)
    hist = train(student, KD(), data, teacher=teacher.eval(), epochs=2, batch_size=16, progress=False)
    # the former loop's optimiser, step by step
    opt = torch.optim.Adam(list(ref.parameters()), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for _ in range(2):
        perm = torch.randperm(64, generator=gen)
        for start in range(0, 64, 16):
            idx = perm[start:start + 16]
            with torch.no_grad():
                zt = teacher(data[0][idx])
            loss = sum(KD().terms_from_logits(ref(data[0][idx]), zt, data[1][idx]).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(student.parameters(), ref.parameters()))
    assert set(hist) == {"loss", "lr", "kd", "ce"}
