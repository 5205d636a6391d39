"""The seeds of a recipe trained as one batched computation == one `train` per seed, bit for bit."""

import pytest
import torch
from conftest import one_train_per_seed

from kdlib import data
from kdlib.batched import StackedMLP, train_seeds, why_sequential
from kdlib.methods import CE, CWTM, DHKD, DKD, DKPP, KD, LELP, BornAgain, EmbeddingMSE, LogitMatching, LuminetKD
from kdlib.models import MLP
from kdlib.tasks import make_model
from kdlib.train import teacher_logits, train

SEEDS = (0, 1, 2)


pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identity is a one-thread property


@pytest.fixture(scope="module")
def digits():
    return data.digits()


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(123)
    return MLP(hidden=(64,)).eval()


def _subset(digits):
    # 25 %: 270 samples = 4 full batches of 64 and a short one of 14, per seed its own
    return lambda seed: data.stratified_subset(digits["train"], 0.25, seed=seed)


def _student(dropout=0.0):
    return lambda seed: make_model("mlp", 10, hidden=(24,), dropout=dropout, seed=seed)


def _reference(make_student, method, data_for_seed, teacher, **recipe):
    return one_train_per_seed(SEEDS, make_student, method, data_for_seed, teacher, **recipe)


def _assert_same(a, b):
    students_a, hist_a = a
    students_b, hist_b = b
    for sa, sb in zip(students_a, students_b):
        for (name, pa), pb in zip(sa.named_parameters(), sb.parameters()):
            assert torch.equal(pa, pb), f"{name} differs by {(pa - pb).abs().max():.3g}"
    assert hist_a == hist_b


OPTIMIZERS = {
    "adam": dict(optimizer="adam", lr=3e-3),
    "sgd": dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("method", [CE(), KD(temperature=4.0, alpha=0.9), DKD(warmup_epochs=2)],
                         ids=["ce", "kd", "dkd"])
def test_batched_equals_sequential_bit_for_bit(digits, teacher, method, opt):
    recipe = dict(epochs=3, batch_size=64, **OPTIMIZERS[opt])
    students = [_student()(s) for s in SEEDS]
    datas = [_subset(digits)(s) for s in SEEDS]
    assert why_sequential(students, method, datas) is None  # the batched path is the one tested
    batched = train_seeds(_student(), method, _subset(digits), SEEDS, teacher=teacher, progress=False, **recipe)
    _assert_same(batched, _reference(_student(), method, _subset(digits), teacher, **recipe))
    assert len(batched[1][0]["loss"]) == 3


@pytest.mark.parametrize("method", [BornAgain(label_weight=0.5), CWTM(), LuminetKD(), LogitMatching(alpha=0.5)],
                         ids=["ban", "cwtm", "luminet", "logit_matching"])
def test_other_logits_only_methods_batch_exactly(digits, teacher, method):
    recipe = dict(epochs=2, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=0.01, lr_schedule="cosine")
    batched = train_seeds(_student(), method, _subset(digits), SEEDS, teacher=teacher, progress=False, **recipe)
    _assert_same(batched, _reference(_student(), method, _subset(digits), teacher, **recipe))


def test_drop_last_and_milestones_batch_exactly(digits, teacher):
    recipe = dict(epochs=3, batch_size=64, lr=0.05, optimizer="sgd", drop_last=True, lr_milestones=[1, 2])
    batched = train_seeds(_student(), KD(), _subset(digits), SEEDS, teacher=teacher, progress=False, **recipe)
    _assert_same(batched, _reference(_student(), KD(), _subset(digits), teacher, **recipe))
    assert batched[1][0]["lr"] == pytest.approx([0.05, 0.005, 0.0005])


def test_dropout_falls_back_to_the_one_seed_loop(digits, teacher):
    students = [_student(dropout=0.1)(s) for s in SEEDS]
    assert "dropout" in why_sequential(students, KD(), [_subset(digits)(s) for s in SEEDS])
    recipe = dict(epochs=2, batch_size=64, lr=3e-3)
    fallback = train_seeds(_student(0.1), KD(), _subset(digits), SEEDS, teacher=teacher, progress=False, **recipe)
    _assert_same(fallback, _reference(_student(0.1), KD(), _subset(digits), teacher, **recipe))


def test_what_is_not_batched_and_why(digits):
    students = [_student()(s) for s in SEEDS]
    datas = [_subset(digits)(s) for s in SEEDS]
    assert "augmentation" in why_sequential(students, KD(), datas, augment=lambda x, g: x)
    assert "logits-only" in why_sequential(students, DKPP(), datas)  # random permutations per step
    assert "logits-only" in why_sequential(students, DHKD(24, 10), datas)  # aux head, gradient surgery
    assert "differ in size" in why_sequential(students, KD(), [datas[0], tuple(t[:100] for t in datas[1]), datas[2]])
    assert "one seed" in why_sequential(students[:1], KD(), datas[:1])
    cnn = [make_model("cnn", 10, seed=s) for s in SEEDS]
    assert "not a kdlib MLP" in why_sequential(cnn, KD(), datas)


def test_logits_only_methods_are_the_ones_with_a_pure_hook():
    batchable = [CE(), KD(), LogitMatching(), DKD(), BornAgain(), CWTM(), LuminetKD()]
    assert all(m.logits_only for m in batchable)
    others = [DKPP(), DHKD(24, 10), LELP(10), EmbeddingMSE(24, 64)]
    assert not any(m.logits_only for m in others)


def test_forward_is_terms_from_logits(digits, teacher):
    """One definition serves both paths: forward == the hook applied to the models' logits."""
    x, y = digits["train"][0][:64], digits["train"][1][:64]
    student = _student()(0)
    for method in (CE(), KD(), DKD(), BornAgain(), CWTM(), LuminetKD()):
        via_forward = method(student, teacher, (x, y))
        via_hook = method.terms_from_logits(student(x), teacher(x), y)
        assert via_forward.keys() == via_hook.keys()
        assert all(torch.equal(via_forward[k], via_hook[k]) for k in via_forward)


def test_teacher_cache_equals_calling_the_teacher(digits, teacher):
    x = digits["train"][0]
    cache = teacher_logits(teacher, x)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    with torch.no_grad():
        for start in range(0, len(x), 64):
            idx = perm[start : start + 64]
            assert torch.equal(cache[idx], teacher(x[idx]))


def test_train_with_and_without_the_teacher_cache_is_the_same(digits, teacher):
    runs = []
    for cache in (True, False):
        student = _student()(5)
        hist = train(student, KD(), _subset(digits)(5), teacher=teacher, epochs=2, seed=5, cache_teacher=cache,
                     progress=False)
        runs.append(([student], [hist]))
    _assert_same(*runs)


def test_drop_last_history_has_one_mean_per_epoch():
    x, y = torch.randn(100, 64), torch.randint(0, 10, (100,))
    hist = train(MLP(hidden=(8,)), CE(), (x, y), epochs=4, batch_size=64, drop_last=True, progress=False)
    assert all(len(v) == 4 for v in hist.values())  # one 64-sample batch per epoch, the 36 left dropped


def test_stacked_mlp_round_trips_the_students():
    students = [_student()(s) for s in SEEDS]
    stacked = StackedMLP(students)
    x = torch.randn(len(SEEDS), 5, 64)
    with torch.no_grad():
        out = stacked(x)
        for k, student in enumerate(students):
            assert torch.equal(out[k], student(x[k]))
    fresh = [_student()(s + 10) for s in SEEDS]
    stacked.copy_to(fresh)
    assert all(torch.equal(p, q) for a, b in zip(students, fresh) for p, q in zip(a.parameters(), b.parameters()))


def test_a_method_that_needs_a_teacher_says_so(digits):
    with pytest.raises(ValueError, match="needs a teacher"):
        train_seeds(_student(), KD(), _subset(digits), SEEDS, epochs=1, progress=False)


def test_cross_entropy_has_f_cross_entropys_gradient_bit_for_bit():
    import torch.nn.functional as F

    from kdlib.losses import cross_entropy

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 10, (70,), generator=g)
    a = (3 * torch.randn(70, 10, generator=g)).requires_grad_()
    b = a.detach().clone().requires_grad_()
    (0.1 * cross_entropy(a, target)).backward()
    (0.1 * F.cross_entropy(b, target)).backward()
    assert torch.equal(a.grad, b.grad)
    with torch.no_grad():
        assert float(cross_entropy(a, target)) == pytest.approx(float(F.cross_entropy(b, target)), rel=1e-6)
