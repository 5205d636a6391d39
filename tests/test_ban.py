"""Born-Again Networks: the target transforms (CWTM weights, DKPP permutation), the methods,
and a two-generation run through the one training loop."""

import pytest
import torch
import torch.nn.functional as F

from kdlib import data
from kdlib.losses import cwtm_weights, dkpp_permute, soft_cross_entropy, target_mass_cross_entropy
from kdlib.experiments.ban import born_again_targets, ensemble_logits, generations, train_generation
from kdlib.methods.ban import CWTM, DKPP, BornAgain, TargetCE
from kdlib.models import build
from kdlib.tasks import make_model
from kdlib.train import train


def seeded():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    target = torch.randint(0, 10, (8,))
    return student, teacher, target


# ------------------------------------------------------------------ CWTM weights


def test_cwtm_weights_are_normalised_confidences():
    _, teacher, _ = seeded()
    w = cwtm_weights(teacher)
    assert w.shape == (8,) and (w > 0).all()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    conf = teacher.softmax(-1).amax(-1)
    torch.testing.assert_close(w, conf / conf.sum())
    # the most confident sample gets the largest weight
    assert int(w.argmax()) == int(conf.argmax())


def test_cwtm_with_equal_confidence_is_mean_ce():
    # rows that are permutations of one another have the same max confidence: CWTM = plain CE
    base = torch.tensor([3.0, 1.0, 0.0, -1.0])
    teacher = torch.stack([base.roll(k) for k in range(4)])
    w = cwtm_weights(teacher)
    torch.testing.assert_close(w, torch.full((4,), 0.25))
    student, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 3])
    cwtm = (w * F.cross_entropy(student, y, reduction="none")).sum()
    assert float(cwtm) == pytest.approx(float(F.cross_entropy(student, y)), rel=1e-6)


def test_cwtm_no_gradient_into_teacher():
    _, teacher, _ = seeded()
    teacher.requires_grad_(True)
    assert not cwtm_weights(teacher).requires_grad


def test_cwtm_golden():
    student, teacher, target = seeded()
    w = cwtm_weights(teacher)
    value = float((w * F.cross_entropy(student, target, reduction="none")).sum())
    assert value == pytest.approx(3.0485756, abs=1e-5)  # torch.manual_seed(0) tensors above


# ------------------------------------------------------------------ DKPP permutation


def test_dkpp_keeps_argmax_and_values():
    _, teacher, _ = seeded()
    p = teacher.softmax(-1)
    q = dkpp_permute(p, torch.Generator().manual_seed(1))
    idx = torch.arange(8)
    torch.testing.assert_close(q.argmax(-1), p.argmax(-1))
    torch.testing.assert_close(q[idx, p.argmax(-1)], p[idx, p.argmax(-1)])
    torch.testing.assert_close(q.sort(-1).values, p.sort(-1).values)  # a permutation of each row
    torch.testing.assert_close(q.sum(-1), torch.ones(8))
    assert not torch.equal(q, p)  # something moved


def test_dkpp_commutes_with_softmax():
    _, teacher, _ = seeded()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(dkpp_permute(teacher, g1).softmax(-1), dkpp_permute(teacher.softmax(-1), g2))


def test_dkpp_two_classes_is_identity():
    p = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    torch.testing.assert_close(dkpp_permute(p), p)


def test_dkpp_no_gradient_into_teacher():
    _, teacher, _ = seeded()
    teacher.requires_grad_(True)
    assert not dkpp_permute(teacher.softmax(-1)).requires_grad


def test_dkpp_golden():
    student, teacher, _ = seeded()
    q = dkpp_permute(teacher.softmax(-1), torch.Generator().manual_seed(0))
    assert float(soft_cross_entropy(student, q)) == pytest.approx(2.8151064, abs=1e-5)  # seeded tensors


# ------------------------------------------------------------------ the BAN loss


def test_ban_loss_is_teacher_entropy_plus_kl():
    student, teacher, _ = seeded()
    p_t = teacher.softmax(-1)
    entropy = -(p_t * p_t.log()).sum(-1).mean()
    kl = (p_t * (p_t.log() - student.log_softmax(-1))).sum(-1).mean()
    assert float(soft_cross_entropy(student, p_t)) == pytest.approx(float(entropy + kl), rel=1e-6)
    # minimised at equality: there it equals the teacher's entropy
    assert float(soft_cross_entropy(teacher, p_t)) == pytest.approx(float(entropy), rel=1e-6)
    assert float(soft_cross_entropy(student, p_t)) >= float(entropy)


def test_ban_loss_golden():
    student, teacher, _ = seeded()
    assert float(soft_cross_entropy(student, teacher.softmax(-1))) == pytest.approx(2.8490381, abs=1e-5)


def test_methods_terms_and_no_teacher_gradient():
    torch.manual_seed(0)
    student, teacher = build("mlp", hidden=[16]), build("mlp", hidden=[16])
    x, y = torch.rand(8, 64), torch.randint(0, 10, (8,))
    for method, names in ((BornAgain(), {"ban"}), (BornAgain(label_weight=0.5), {"ban", "ce"}),
                          (CWTM(), {"cwtm"}), (DKPP(), {"dkpp"})):
        terms = method(student, teacher, (x, y))
        assert set(terms) == names and all(torch.isfinite(v) for v in terms.values())
        sum(terms.values()).backward()
        assert all(p.grad is None for p in teacher.parameters())
        student.zero_grad()


def test_two_generations_and_ensemble_through_train():
    task = data.digits()
    subset = data.stratified_subset(task["train"], 0.1, seed=0)
    torch.manual_seed(0)
    gen0 = build("mlp", hidden=[16])
    train(gen0, BornAgain(), subset, teacher=build("mlp", hidden=[16]), epochs=1, progress=False)
    chain = generations(gen0, lambda k: build("mlp", hidden=[16]), subset, 2, epochs=2, progress=False)
    assert len(chain) == 3 and chain[1] is not chain[2]
    for method in (CWTM(), DKPP()):
        history = train(build("mlp", hidden=[16]), method, subset, teacher=gen0, epochs=2, progress=False)
        assert all(torch.isfinite(torch.tensor(v)).all() for v in history.values())
        assert set(history) >= {"loss", "lr"}
    logits = ensemble_logits(chain[1:], task["test"][0])
    assert logits.shape == (len(task["test"][0]), 10)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(len(logits)))


# ------------------------------------------------------------------ precomputed targets (TargetCE)


def test_target_mass_ce_is_soft_ce_for_distributions_and_cwtm_for_weighted_labels():
    student, teacher, target = seeded()
    p_t = teacher.softmax(-1)
    assert float(target_mass_cross_entropy(student, p_t)) == pytest.approx(float(soft_cross_entropy(student, p_t)),
                                                                           rel=1e-6)
    w = p_t.amax(-1, keepdim=True) * F.one_hot(target, 10).float()
    cwtm = (cwtm_weights(teacher) * F.cross_entropy(student, target, reduction="none")).sum()
    assert float(target_mass_cross_entropy(student, w)) == pytest.approx(float(cwtm), rel=1e-6)
    # scale-free in the targets, >= 0, and minimised (= the target entropy) at p_s = the target
    assert float(target_mass_cross_entropy(student, 3 * p_t)) == pytest.approx(float(soft_cross_entropy(student, p_t)),
                                                                               rel=1e-6)
    entropy = float(-(p_t * p_t.log()).sum(-1).mean())
    assert float(target_mass_cross_entropy(teacher, p_t)) == pytest.approx(entropy, rel=1e-6)
    assert float(target_mass_cross_entropy(student, p_t)) > entropy >= 0


def test_target_mass_ce_no_gradient_into_targets_and_golden():
    student, teacher, _ = seeded()
    q = teacher.softmax(-1).requires_grad_(True)
    student.requires_grad_(True)
    target_mass_cross_entropy(student, q).backward()
    assert q.grad is None and student.grad is not None
    assert float(target_mass_cross_entropy(student.detach(), q.detach())) == pytest.approx(2.8490381, abs=1e-5)


def test_born_again_targets():
    torch.manual_seed(0)
    teacher = build("mlp", hidden=[16])
    x, y = torch.rand(32, 64), torch.randint(0, 10, (32,))
    with torch.no_grad():
        p = teacher(x).softmax(-1)
    torch.testing.assert_close(born_again_targets(teacher, x, y, "ban"), p)
    cw = born_again_targets(teacher, x, y, "cwtm")
    torch.testing.assert_close(cw.sum(-1), p.amax(-1))
    assert torch.equal(cw.argmax(-1), y)
    d1 = born_again_targets(teacher, x, y, "dkpp", generator=torch.Generator().manual_seed(3))
    d2 = born_again_targets(teacher, x, y, "dkpp", generator=torch.Generator().manual_seed(3))
    assert torch.equal(d1, d2) and not torch.equal(d1, p)  # one fixed permutation per sample, from the generator
    torch.testing.assert_close(d1.argmax(-1), p.argmax(-1))
    torch.testing.assert_close(d1.sort(-1).values, p.sort(-1).values)
    with pytest.raises(ValueError, match="kind"):
        born_again_targets(teacher, x, y, "kd")


def _small():
    task = data.mnist1d()
    return (task["train"][0][:300], task["train"][1][:300])


def _mlp(seed):
    return make_model("mlp", 10, [16], seed=seed, dataset="mnist1d")


def _max_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


RECIPE = dict(epochs=2, batch_size=50, lr=1e-2, optimizer="adam", progress=False)


def test_target_ce_trains_the_same_students_as_the_teacher_methods():
    small = _small()
    teacher = _mlp(7)
    train(teacher, BornAgain(), small, teacher=_mlp(8), seed=7, **RECIPE)
    for kind, method in (("ban", BornAgain()), ("cwtm", CWTM())):
        a, b = _mlp(1), _mlp(1)
        train(a, method, small, teacher=teacher, seed=1, **RECIPE)
        train(b, TargetCE(), (small[0], born_again_targets(teacher, small[0], small[1], kind)), seed=1, **RECIPE)
        assert _max_diff(a, b) < 1e-4, kind  # the same loss, to float rounding


def test_train_generation_gives_each_seed_its_own_teacher_batched_as_sequential():
    small = _small()
    teachers = {s: _mlp(100 + s) for s in (1, 2, 3)}
    for s, t in teachers.items():
        train(t, BornAgain(), small, teacher=_mlp(200 + s), seed=s, **RECIPE)
    for kind in ("ban", "cwtm", "dkpp"):
        batched = train_generation(_mlp, kind, teachers, lambda s: small, [1, 2, 3], **RECIPE)
        alone = train_generation(_mlp, kind, teachers, lambda s: small, [1, 2, 3], batched=False, **RECIPE)
        assert all(_max_diff(a, b) == 0.0 for a, b in zip(batched, alone)), kind  # bit for bit at one thread
    # seed 2 with its own teacher, trained alone with the teacher in the loop: the same student
    ref = _mlp(2)
    train(ref, BornAgain(), small, teacher=teachers[2], seed=2, **RECIPE)
    batched_ban = train_generation(_mlp, "ban", teachers, lambda s: small, [1, 2, 3], **RECIPE)[1]
    assert _max_diff(ref, batched_ban) < 1e-4
    wrong_teacher = train_generation(_mlp, "ban", {2: teachers[1]}, lambda s: small, [2], **RECIPE)[0]
    assert _max_diff(batched_ban, wrong_teacher) > 1e-3
    gen0 = train_generation(_mlp, "ce", None, lambda s: small, [1, 2], **RECIPE)
    assert len(gen0) == 2 and _max_diff(gen0[0], gen0[1]) > 0
    with pytest.raises(ValueError, match="kind"):
        train_generation(_mlp, "kd", teachers, lambda s: small, [1], **RECIPE)


def test_train_generation_with_augmentation_keeps_the_teacher_in_the_loop():
    small = _small()
    teachers = {1: _mlp(5)}

    def jitter(x, generator):
        return x + 0.01 * torch.randn(x.shape, generator=generator)

    for kind in ("ban", "cwtm", "dkpp"):
        (student,) = train_generation(_mlp, kind, teachers, lambda s: small, [1], augment=jitter, **RECIPE)
        assert all(torch.isfinite(p).all() for p in student.parameters())
