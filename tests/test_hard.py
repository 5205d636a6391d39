"""HARD (Nix, Burg & Sinz 2023): the differentiable shift/scale, the augmentor, the method, the teacher fit."""

import copy
from functools import partial

import pytest
import torch

from kdlib.augment import ShiftScaleAugmentor, random_shift, shift_scale
from kdlib.losses import kd_loss
from kdlib.methods import METHODS
from kdlib.methods.hard import HARD, augmentor_objective
from kdlib.models import MLP, build
from kdlib.train import train


def signals(n=6, length=40, seed=0):
    return torch.randn(n, length, generator=torch.Generator().manual_seed(seed))


def test_zero_shift_unit_scale_is_the_identity():
    x = signals()
    assert torch.equal(shift_scale(x, 0.0), x)
    assert torch.equal(shift_scale(x, torch.zeros(6), torch.ones(6)), x)
    x3 = x[:, None, :]
    assert torch.equal(shift_scale(x3, 0.0), x3)


@pytest.mark.parametrize("k", [-7, -1, 1, 3, 40, 45])
def test_integer_shift_is_torch_roll(k):
    x = signals()
    assert torch.allclose(shift_scale(x, float(k)), torch.roll(x, k, dims=-1), atol=0, rtol=0)


def test_per_sample_shifts_and_half_shift_interpolates():
    x = signals(3)
    out = shift_scale(x, torch.tensor([0.0, 2.0, 0.5]))
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], torch.roll(x[1], 2))
    # out[i] = x[i - 0.5] = mean of x[i-1] and x[i] (circularly)
    assert torch.allclose(out[2], 0.5 * (x[2] + torch.roll(x[2], 1)), atol=1e-6)


def test_scale_dilates_about_the_centre():
    x = torch.zeros(1, 41)
    x[0, 20] = 1.0  # the centre sample of an odd-length signal stays put under any scale
    x[0, 25] = 2.0
    out = shift_scale(x, 0.0, torch.tensor([2.0]))
    assert out[0, 20] == 1.0
    assert torch.isclose(out[0, 30], torch.tensor(2.0))  # 5 samples from the centre -> 10
    with pytest.raises(ValueError, match="scale"):
        shift_scale(x, 0.0, torch.tensor([0.0]))


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shift_scale: x"):
        shift_scale(torch.zeros(2, 3, 40), 0.0)


def test_gradients_reach_shift_and_scale():
    x = signals()
    shift = torch.full((6,), 0.3, requires_grad=True)
    scale = torch.full((6,), 1.1, requires_grad=True)
    (shift_scale(x, shift, scale) * signals(seed=1)).sum().backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0
    assert scale.grad is not None and scale.grad.abs().sum() > 0


def test_random_shift_draws_integer_rolls_within_bounds():
    x = torch.arange(40.0).repeat(200, 1)
    out = random_shift(x, torch.Generator().manual_seed(0), max_shift=3)
    shifts = (out[:, 0] - 0).neg().remainder(40)  # out[0] = x[-k] = (40 - k) % 40 -> k
    shifts = torch.where(shifts > 20, shifts - 40, shifts)
    assert set(shifts.long().tolist()) == {-3, -2, -1, 0, 1, 2, 3}
    again = random_shift(x, torch.Generator().manual_seed(0), max_shift=3)
    assert torch.equal(out, again)


def test_augmentor_bounds_hold_and_start_symmetric():
    aug = ShiftScaleAugmentor(max_shift=5.0, max_scale=1.5, seed=0)
    with torch.no_grad():  # push the network far outside: tanh keeps the bounds
        aug.net[-1].bias.copy_(torch.tensor([50.0, 3.0, -50.0]))
    shift, scale = aug.params(signals(100))
    assert shift.abs().max() <= 5.0 and scale.min() >= 1 / 1.5 - 1e-6 and scale.max() <= 1.5 + 1e-6
    fresh = ShiftScaleAugmentor(max_shift=5.0, seed=0)
    with torch.no_grad():
        shift, scale = fresh.params(signals(2000))
    assert abs(float(shift.mean())) < 0.3 and float(shift.std()) > 1.0 and torch.all(scale == 1)


def test_augmentor_objective_signs_and_no_gradient_into_the_clean_teacher():
    t = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    assert torch.isclose(augmentor_objective(t, t, t, lam=1.0), torch.tensor(0.0), atol=1e-6)
    s = torch.randn(8, 10, generator=torch.Generator().manual_seed(1))
    # the student disagreeing raises it; the teacher changing its mind lowers it
    assert augmentor_objective(t, t, s, lam=1.0) > 0
    assert augmentor_objective(t, s, s, lam=1.0) < 0
    clean = t.clone().requires_grad_(True)
    augmentor_objective(clean, s.requires_grad_(True), t, lam=1.0).backward()
    assert clean.grad is None
    # golden value: D(t(x^), s(x^)) - 0.5 * D(t(x), t(x^)) at T = 1
    expected = kd_loss(t, s, 1.0) - 0.5 * kd_loss(s, t, 1.0)
    assert torch.isclose(augmentor_objective(t, s, t, lam=0.5), expected)


def _data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


def _pair(freeze=False):
    """A CNN1D teacher in eval mode (its weights frozen if asked) and an MLP student seeded with 0."""
    teacher = build("cnn1d", num_classes=10).eval()
    for p in teacher.parameters() if freeze else ():
        p.requires_grad_(False)
    torch.manual_seed(0)
    return teacher, MLP(hidden=(16,), in_dim=40)


def test_learned_hard_trains_student_and_augmentor_separately():
    teacher, student = _pair()
    method = HARD("learned", max_shift=4.0, aug_lr=1e-2, seed=0)
    aug_before = copy.deepcopy(method.augmentor.state_dict())
    teacher_before = copy.deepcopy(teacher.state_dict())
    hist = train(student, method, _data(), teacher=teacher, epochs=2, batch_size=50, lr=1e-2, progress=False)
    assert {"kd", "kd_aug"} <= set(hist) and all(v == v for v in hist["loss"])
    changed = [not torch.equal(aug_before[k], v) for k, v in method.augmentor.state_dict().items()]
    assert any(changed), "the augmentor never moved"
    assert all(p.grad is None for p in method.augmentor.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())
    assert method.last_shift.abs().max() <= 4.0 and method.last_shift.numel() == 50


def test_augmentor_ascends_its_objective():
    """One step on a fixed batch raises the objective (a plain gradient-ascent check)."""
    teacher, student = _pair(freeze=True)
    x, _ = _data(100)
    method = HARD("learned", max_shift=6.0, aug_lr=5e-2, seed=0)
    t_logits = teacher(x)

    def objective():
        method.augmentor.generator.manual_seed(1)  # the same noise each time
        shift, _ = method.augmentor.params(x)
        x_aug = shift_scale(x, shift)
        return float(augmentor_objective(t_logits, teacher(x_aug), student(x_aug), method.lam).detach())

    before = objective()
    for _ in range(5):
        method.augmentor.generator.manual_seed(1)
        method.augmentor_step(student, teacher, x, t_logits)
    assert objective() > before


def test_random_mode_and_registry():
    assert METHODS["hard"] is HARD
    teacher, student = _pair()
    method = HARD("random", max_shift=4.0, seed=0)
    assert method.augmentor is None and list(method.parameters()) == []
    hist = train(student, method, _data(), teacher=teacher, epochs=1, batch_size=50, progress=False)
    assert hist["kd_aug"][0] > 0
    with pytest.raises(ValueError, match="mode"):
        HARD("sometimes")
    with pytest.raises(ValueError, match="teacher"):
        HARD("random")(student, None, _data(10))


def test_augment_signature_works_in_train():
    torch.manual_seed(0)
    model = build("cnn1d", num_classes=10)
    from kdlib.methods import CE
    hist = train(model, CE(), _data(), epochs=1, batch_size=50, augment=partial(random_shift, max_shift=2),
                 progress=False)
    assert hist["ce"][0] > 0


def test_student_gradient_is_plain_kd_on_the_detached_augmentation():
    """The augmentor's objective never reaches the student's .grad: it equals KD on x and on a fixed x^."""
    teacher, student = _pair(freeze=True)
    x, y = _data(50)
    method = HARD("learned", max_shift=6.0, aug_lr=1e-2, seed=0)
    with torch.no_grad():
        method.augmentor.net[-1].bias.copy_(torch.tensor([0.3, 0.0, 0.0]))
    terms = method(student, teacher, (x, y))
    method.backward(sum(terms.values()), terms)
    got = [p.grad.clone() for p in student.parameters()]
    student.zero_grad()
    x_aug = shift_scale(x, method.last_shift)
    with torch.no_grad():
        t, t_aug = teacher(x), teacher(x_aug)
    (kd_loss(student(x), t, 4.0) + kd_loss(student(x_aug), t_aug, 4.0)).backward()
    for g, p in zip(got, student.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)
