"""Teacher-Class Network: the split covers every feature once, the chunked MSE (zero at equality,
per-chunk means, golden value), perfect students give the teacher's logits, no gradient into the
teacher, cached targets equal hooked ones, parameter budgets, and a short two-stage run."""

import pytest
import torch
from torch import nn

from kdlib.methods import CE, METHODS
from kdlib.methods.tcn import (TCN, TeacherClass, chunked_mse, mlp_params, split_sizes, teacher_features,
                               width_for_budget)
from kdlib.models import build
from kdlib.models.small import MLP
from kdlib.train import train


def cnn_teacher():
    torch.manual_seed(0)
    return build("cnn1d", num_classes=10).eval()


class Chunk(nn.Module):
    """A 'perfect student': returns its chunk of the teacher's features."""

    def __init__(self, teacher, start, stop):
        super().__init__()
        self.teacher, self.start, self.stop = teacher, start, stop

    def forward(self, x):
        return teacher_features(self.teacher, x)[:, self.start:self.stop]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 125])
def test_split_covers_every_feature_exactly_once(n):
    sizes = split_sizes(125, n)
    assert len(sizes) == n and sum(sizes) == 125 and max(sizes) - min(sizes) <= 1
    edges = torch.tensor([0, *sizes]).cumsum(0)
    covered = torch.cat([torch.arange(a, b) for a, b in zip(edges[:-1], edges[1:])])
    assert torch.equal(covered, torch.arange(125))
    assert split_sizes(125, 4) == [32, 31, 31, 31]


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="n must be"):
        split_sizes(125, 0)
    with pytest.raises(ValueError, match="sizes sum"):
        chunked_mse(torch.zeros(2, 5), torch.zeros(2, 5), [2, 2])


def test_chunked_mse_properties_and_golden_value():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 7, generator=g), torch.randn(6, 7, generator=g)
    sizes = [3, 2, 2]
    assert chunked_mse(t, t, sizes).item() == 0.0
    assert chunked_mse(s, t, sizes).item() > 0
    by_hand = sum(((s[:, a:b] - t[:, a:b]) ** 2).mean() for a, b in [(0, 3), (3, 5), (5, 7)])
    assert chunked_mse(s, t, sizes).item() == pytest.approx(by_hand.item(), rel=1e-6)
    # one chunk: the plain MSE
    assert chunked_mse(s, t, [7]).item() == pytest.approx(nn.functional.mse_loss(s, t).item(), rel=1e-6)
    # computed once with torch 2.13 (seeded tensors above)
    assert chunked_mse(s, t, sizes).item() == pytest.approx(7.4161529541015625, rel=1e-5)


def test_chunk_loss_trains_each_student_on_its_own_chunk_only():
    s = torch.zeros(4, 5, requires_grad=True)
    t = torch.ones(4, 5)
    t[:, 3:] = 0.0  # the second chunk is already right
    chunked_mse(s, t, [3, 2]).backward()
    assert s.grad[:, :3].abs().sum() > 0 and torch.equal(s.grad[:, 3:], torch.zeros(4, 2))


def test_perfect_students_reproduce_the_teachers_logits():
    teacher = cnn_teacher()
    x = torch.randn(16, 40)
    for n in (1, 2, 4, 8):
        sizes = split_sizes(125, n)
        edges = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        tc = TeacherClass([Chunk(teacher, a, b) for a, b in zip(edges[:-1], edges[1:])], teacher.fc, sizes)
        assert torch.allclose(tc(x), teacher(x), atol=1e-6)
        assert TCN()(tc, teacher, (x, None))["mse"].item() == pytest.approx(0.0, abs=1e-10)


def test_no_gradient_into_the_teacher_and_teacher_unchanged():
    teacher = cnn_teacher()
    before = [p.clone() for p in teacher.parameters()]
    sizes = split_sizes(125, 4)
    torch.manual_seed(1)
    tc = TeacherClass([MLP(40, (8,), c) for c in sizes], teacher.fc, sizes)
    x = torch.randn(32, 40)
    TCN()(tc, teacher, (x, torch.zeros(32, dtype=torch.long)))["mse"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is None for p in tc.head.parameters())  # stage 1: the head is frozen
    assert all(p.grad is not None for p in tc.students.parameters())
    assert tc.head.weight.data_ptr() != teacher.fc.weight.data_ptr()  # a copy: stage 2 leaves the teacher alone
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_cached_targets_equal_hooked_targets():
    teacher = cnn_teacher()
    x = torch.randn(20, 40)
    sizes = split_sizes(125, 2)
    torch.manual_seed(2)
    tc = TeacherClass([MLP(40, (8,), c) for c in sizes], teacher.fc, sizes)
    hooked = TCN()(tc, teacher, (x, None))["mse"]
    cached = TCN()(tc, None, (x, None, teacher_features(teacher, x)))["mse"]
    assert hooked.item() == cached.item()
    assert teacher_features(teacher, x).shape == (20, 125)


def test_budget_width_is_the_widest_that_fits():
    assert mlp_params(40, [100, 100], 10) == 15210 == sum(p.numel() for p in MLP(40, (100, 100), 10).parameters())
    for n in (1, 2, 4, 8):
        h = width_for_budget(n, 15210, 40, 125, depth=2, head_params=1260)
        total = 1260 + sum(mlp_params(40, [h, h], c) for c in split_sizes(125, n))
        wider = 1260 + sum(mlp_params(40, [h + 1, h + 1], c) for c in split_sizes(125, n))
        assert total <= 15210 < wider
    with pytest.raises(ValueError, match="budget"):
        width_for_budget(8, 100, 40, 125)


def test_registered_and_bad_arguments_named():
    assert METHODS["tcn"] is TCN
    with pytest.raises(ValueError, match="weight"):
        TCN(weight=0)
    with pytest.raises(TypeError, match="TeacherClass"):
        TCN()(MLP(40, (8,), 125), cnn_teacher(), (torch.randn(2, 40), None))
    with pytest.raises(ValueError, match="head takes"):
        TeacherClass([MLP(40, (8,), 3)], nn.Linear(125, 10), [3])


def test_short_two_stage_run():
    teacher = cnn_teacher()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(200, 40, generator=g), torch.randint(0, 10, (200,), generator=g)
    sizes = split_sizes(125, 4)
    torch.manual_seed(4)
    tc = TeacherClass([MLP(40, (16, 16), c) for c in sizes], teacher.fc, sizes)
    head0 = tc.head.weight.clone()
    hist = train(tc, TCN(), (x, y), teacher=teacher, epochs=5, batch_size=50, lr=1e-2, progress=False)
    assert hist["mse"][-1] < hist["mse"][0]
    assert torch.equal(tc.head.weight, head0)  # stage 1 leaves the head alone
    students0 = [p.clone() for p in tc.students.parameters()]
    tc.freeze_students()
    train(tc.head, CE(), (tc.combined(x), y), epochs=2, batch_size=50, lr=1e-2, progress=False)
    assert not torch.equal(tc.head.weight, head0)
    assert all(torch.equal(a, b) for a, b in zip(students0, tc.students.parameters()))
    assert tc(x).shape == (200, 10) and torch.isfinite(tc(x)).all()
