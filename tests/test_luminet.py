"""LumiNet: the batch-standardised KD loss (properties, invariances, golden values) and the method."""

import pytest
import torch
import torch.nn.functional as F

from kdlib import data
from kdlib.losses import batch_standardise, luminet_loss
from kdlib.methods.luminet import LuminetKD
from kdlib.models import build
from kdlib.train import train


def seeded():
    torch.manual_seed(0)
    student, teacher = torch.randn(16, 10), 3 * torch.randn(16, 10)
    target = torch.randint(0, 10, (16,))
    return student, teacher, target


def official(student_logits, teacher_logits, temperature):
    """The official computation written out with torch's own ops (kl_div, var, no alpha^2)."""
    def perception(z):
        return (z - z.mean(0, keepdim=True)) / torch.sqrt(z.var(0, keepdim=True, unbiased=False) + 1e-5)

    return F.kl_div(F.log_softmax(perception(student_logits) / temperature, 1),
                    F.softmax(perception(teacher_logits) / temperature, 1), reduction="batchmean")


def test_golden_values():
    s, t, _ = seeded()
    # computed once with torch 2.13 (seeded tensors above)
    assert luminet_loss(s, t, 4.0).item() == pytest.approx(0.05891834944486618, rel=1e-5)
    assert luminet_loss(s, t, 1.0).item() == pytest.approx(0.8438210487365723, rel=1e-5)


def test_matches_the_official_formula():
    s, t, _ = seeded()
    for T in (1.0, 4.0, 8.0):
        assert luminet_loss(s, t, T).item() == pytest.approx(official(s, t, T).item(), rel=1e-5)


def test_standardised_columns_have_zero_mean_unit_variance():
    s, _, _ = seeded()
    z = batch_standardise(5 * s + 2)
    torch.testing.assert_close(z.mean(0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(10), atol=1e-4, rtol=0)


def test_nonnegative_zero_at_equality_and_invariances():
    s, t, _ = seeded()
    assert luminet_loss(s, t, 4.0).item() >= 0
    assert luminet_loss(s, s.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    # per-class shifts and a common positive scale of the student's logits change nothing
    shift = torch.randn(1, 10) * 10
    assert luminet_loss(2.5 * s + shift, t, 4.0).item() == pytest.approx(luminet_loss(s, t, 4.0).item(), rel=1e-4)
    # so a student whose logits are an affine copy of the teacher's, class by class, has zero loss
    scale = torch.rand(1, 10) + 0.5
    assert luminet_loss(scale * t + shift, t, 4.0).item() == pytest.approx(0.0, abs=1e-5)


def test_depends_on_the_batch_and_degenerates_for_one_sample():
    s, t, _ = seeded()
    # a sample's standardised logits, hence its share of the loss, change with its batch-mates
    assert not torch.allclose(batch_standardise(s)[:8], batch_standardise(s[:8]), atol=1e-3)
    assert luminet_loss(s[:8], t[:8], 4.0).item() != pytest.approx(luminet_loss(s, t, 4.0).item(), rel=1e-2)
    # a batch of one standardises to zeros: uniform distributions, zero loss
    assert luminet_loss(s[:1], t[:1], 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_the_student_only():
    s, t, _ = seeded()
    s = s.clone().requires_grad_()
    t = t.clone().requires_grad_()
    luminet_loss(s, t.detach(), 4.0).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


def test_method_golden_terms_alpha_squared_and_warmup():
    s, t, y = seeded()
    method = LuminetKD()  # official res32x4 -> res8x4: alpha 33, T 4, CE 2, warm-up 20
    method.epoch = 4  # 0-based: warm-up factor 5 / 20
    terms = method(lambda x: s, lambda x: t, (None, y))
    assert set(terms) == {"kd", "ce"}
    # computed once with torch 2.13 (seeded tensors above)
    assert terms["kd"].item() == pytest.approx(16.04051971435547, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(5.439226150512695, rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.25 * 33**2 * luminet_loss(s, t, 4.0).item(), rel=1e-6)
    method.epoch = 19
    assert method.warmup() == 1.0
    assert LuminetKD(warmup_epochs=0).warmup() == 1.0


def test_no_gradient_into_teacher_parameters_and_two_epoch_run():
    torch.manual_seed(0)
    subset = data.stratified_subset(data.digits()["train"], 0.1, seed=0)
    teacher = build("mlp", hidden=[16], num_classes=10)
    student = build("mlp", hidden=[8], num_classes=10)
    sum(LuminetKD()(student, teacher, (subset[0][:32], subset[1][:32])).values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    student.zero_grad()
    history = train(student, LuminetKD(), subset, teacher=teacher, epochs=2, batch_size=32, progress=False)
    for name in ("loss", "kd", "ce"):
        assert name in history and len(history[name]) == 2
        assert all(torch.isfinite(torch.tensor(history[name])))


@pytest.mark.parametrize("batch_size", [32, 128])
@pytest.mark.parametrize("drop_last", [True, False], ids=["drop_last", "ragged"])
def test_seeds_in_one_batch_equal_one_run_per_seed(batch_size, drop_last, one_thread):
    """LumiNet's targets depend on the batch: the batched seeds must still see exactly their own batches.

    300 signals of 40 values: 9 batches of 32 (+12) or 2 of 128 (+44); with drop_last=False the short
    last batch is standardised on its own, as in `train`. Bit for bit at one thread.
    """
    from kdlib.batched import train_seeds, why_sequential
    from kdlib.tasks import make_model

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 40, generator=g), torch.randint(0, 10, (300,), generator=g)
    torch.manual_seed(1)
    teacher = build("mlp", hidden=[32], num_classes=10, in_dim=40).eval()
    seeds = [0, 1, 2]

    def make_student(seed):
        return make_model("mlp", 10, [16], seed=seed, dataset="mnist1d")

    recipe = dict(epochs=3, batch_size=batch_size, lr=1e-2, optimizer="adam", lr_schedule="cosine",
                  drop_last=drop_last)
    method = LuminetKD(warmup_epochs=2)
    assert why_sequential([make_student(s) for s in seeds], method, [(x, y)] * 3) is None  # really batched
    students, histories = train_seeds(make_student, method, lambda s: (x, y), seeds, teacher=teacher,
                                      progress=False, **recipe)
    for seed, student, history in zip(seeds, students, histories):
        reference = make_student(seed)
        expected = train(reference, LuminetKD(warmup_epochs=2), (x, y), teacher=teacher, seed=seed,
                         progress=False, **recipe)
        assert history == expected
        for p, q in zip(student.parameters(), reference.parameters()):
            assert torch.equal(p, q)
