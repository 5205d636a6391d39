"""The CNN1D and PatchTransformer seeds of a recipe trained as one computation == one `train` per seed,
to float32 round-off; RKD through `terms_from_outputs` on MLPs bit for bit, like the MLP + logits path
(test_batched.py), and on CNN1Ds to round-off.

Tolerances. The stacked models compute the same sums as the one-seed models in another order
(im2col + bmm for oneDNN's convolution, LayerNorm then its affine instead of the fused kernel, bmm
for addmm), so each value differs by a few float32 ulp (eps = 1.2e-7) times the length of its
reduction (<= 250 here): measured <= 1.1e-6 of each gradient tensor's largest entry on one step,
so 1e-5 of it (an element near zero gets the absolute error of the large terms summed into it).
Over a few SGD steps these differences are carried, not amplified: parameters within rtol 1e-4,
atol 1e-5 (measured ~1e-6), and every seed predicts the same class on every test signal.
Adam's first steps divide the gradient by its own magnitude, so a coordinate whose gradient is
round-off-sized can move by up to lr either way: with Adam, the logged terms are compared to
1e-2 relative (a small KD term of 1e-3 measured 2.4e-3 apart after two epochs) and the
predictions exactly, not the parameters.
"""

import pytest
import torch
from conftest import one_train_per_seed

from kdlib import data, repro
from kdlib.batched import train_seeds, why_sequential
from kdlib.methods import KD, EmbeddingMSE
from kdlib.methods.rkd import RKD
from kdlib.models import CNN1D, MLP
from kdlib.models.transformer import PatchTransformer
from kdlib.stacked_models import stack, why_not_stackable
from kdlib.tasks import make_model

pytestmark = pytest.mark.usefixtures("one_thread")
SEEDS = (0, 1, 2)


def _transformer(seed, dropout=0.0):
    repro.seed_everything(seed)
    return PatchTransformer(dim=16, heads=2, dropout=dropout)


STUDENTS = {
    "mlp": lambda s: make_model("mlp", 10, hidden=(32, 16), seed=s, dataset="mnist1d"),
    "cnn1d": lambda s: make_model("cnn1d", 10, seed=s, dataset="mnist1d"),
    "transformer": _transformer,
}
# (student, method): the families `make bench` reports, each trained on the batched path
CASES = {"cnn1d-kd": ("cnn1d", KD()), "transformer-kd": ("transformer", KD()),
         "mlp-rkd": ("mlp", RKD()), "cnn1d-rkd": ("cnn1d", RKD(kd_weight=0.5))}


@pytest.fixture(scope="module")
def mnist1d():
    return data.mnist1d()


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(7)
    return CNN1D().eval()


def _subset(splits):  # 10 %: 350 signals = 5 batches of 64 and one of 30, per seed its own
    return lambda seed: data.stratified_subset(splits["train"], 0.1, seed=seed)


@pytest.mark.parametrize("family", ["cnn1d", "transformer"])
def test_stacked_model_equals_each_model_to_round_off(family):
    students = [STUDENTS[family](s) for s in SEEDS]
    stacked = stack(students)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(len(SEEDS), 20, 40, generator=g), torch.randint(0, 10, (len(SEEDS), 20), generator=g)
    logits, features = stacked(x, features=True)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").backward()
    for k, student in enumerate(students):
        out = student(x[k])
        torch.nn.functional.cross_entropy(out, y[k], reduction="sum").backward()
        torch.testing.assert_close(logits[k], out, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(features[k], student.features(x[k].unsqueeze(1) if family == "cnn1d" else x[k])
                                   .flatten(1), rtol=1e-5, atol=1e-6)
        for name, p in student.named_parameters():
            scale = float(p.grad.abs().max())  # a sum's round-off is relative to its largest terms
            torch.testing.assert_close(stacked[name].grad[k], p.grad, rtol=1e-5, atol=1e-5 * scale, msg=name)


def test_stacked_mlp_features_are_the_hooked_ones_bit_for_bit():
    students = [STUDENTS["mlp"](s) for s in SEEDS]
    x = torch.randn(len(SEEDS), 9, 40)
    with torch.no_grad():
        _, features = stack(students)(x, features=True)
        for k, student in enumerate(students):
            assert torch.equal(features[k], student.features(x[k]))


def _reference(make_student, method, data_for_seed, teacher, **recipe):
    return one_train_per_seed(SEEDS, make_student, method, data_for_seed, teacher, **recipe)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_new_families_batch_to_round_off(mnist1d, teacher, case, optimizer):
    family, method = CASES[case]
    make_student = STUDENTS[family]
    recipe = dict(epochs=2, batch_size=64, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3)
    assert why_sequential([make_student(s) for s in SEEDS], method,
                          [_subset(mnist1d)(s) for s in SEEDS]) is None  # the batched path is the one tested
    batched = train_seeds(make_student, method, _subset(mnist1d), SEEDS, teacher=teacher, progress=False, **recipe)
    reference = _reference(make_student, method, _subset(mnist1d), teacher, **recipe)
    x = mnist1d["test"][0][:500]
    for a, b, ha, hb in zip(batched[0], reference[0], batched[1], reference[1]):
        assert ha.keys() == hb.keys() and ha["lr"] == hb["lr"]
        rel = 1e-4 if optimizer == "sgd" else 1e-2  # Adam: see the module docstring (measured 2.4e-3)
        for name in ha:
            assert ha[name] == pytest.approx(hb[name], rel=rel, abs=1e-6), name
        if optimizer == "sgd":
            for (name, p), q in zip(a.named_parameters(), b.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
        with torch.no_grad():
            assert torch.equal(a(x).argmax(-1), b(x).argmax(-1))


@pytest.mark.parametrize("method", [RKD(), RKD(kd_weight=0.5, ce_weight=0.5), RKD(dist_weight=0.0)],
                         ids=["ce-d-a", "kd-ce-d-a", "ce-a"])
def test_rkd_on_mlps_batches_to_round_off(mnist1d, teacher, method):
    """The stacked MLP computes each seed's layers on its own slice, each seed's relation terms are its
    one-seed functions on its own slice, and the frozen CNN1D teacher's cached outputs are the ones it
    gives per batch: so the seeds of an RKD recipe on MLPs equal one `train` per seed. Bit for bit on
    the Xeon this was written on; on an AMD EPYC the KD + CE + RKD mix differs in the last float32 bit
    after two epochs (4.5e-8), so the test asks for float32 round-off and the same predictions."""
    make_student = STUDENTS["mlp"]
    recipe = dict(epochs=2, batch_size=64, optimizer="adam", lr=1e-2)
    students, histories = train_seeds(make_student, method, _subset(mnist1d), SEEDS, teacher=teacher,
                                      progress=False, **recipe)
    ref_students, ref_histories = _reference(make_student, method, _subset(mnist1d), teacher, **recipe)
    x = mnist1d["test"][0][:500]
    for a, b in zip(students, ref_students):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
        with torch.no_grad():
            assert torch.equal(a(x).argmax(-1), b(x).argmax(-1))
    for ha, hb in zip(histories, ref_histories):
        assert ha.keys() == hb.keys()
        for name in ha:
            assert ha[name] == pytest.approx(hb[name], rel=1e-5, abs=1e-7), name


def test_rkd_terms_from_outputs_is_its_forward_and_per_seed_on_stacks(mnist1d, teacher):
    """The split keeps RKD's one-seed numbers (forward calls the pure function), and on K stacked seeds
    the pure function returns each seed's own terms, bit for bit."""
    from kdlib.hooks import capture

    method = RKD(kd_weight=0.3)
    x, y = mnist1d["train"][0][:64], mnist1d["train"][1][:64]
    students = [STUDENTS["mlp"](s) for s in SEEDS]
    with torch.no_grad(), capture(teacher, ["features"]) as ht:
        t_logits = teacher(x)
    t_features = ht["features"].flatten(1)
    singles = []
    for student in students:
        via_forward = method(student, teacher, (x, y))
        with capture(student, ["features"]) as hs:
            logits = student(x)
        via_pure = method.terms_from_outputs(logits, hs["features"].flatten(1), t_logits, t_features, y)
        assert all(torch.equal(via_forward[k], via_pure[k]) for k in via_forward)
        singles.append(via_pure)
    k = len(SEEDS)
    logits, features = stack(students)(x.expand(k, -1, -1), features=True)
    stacked = method.terms_from_outputs(logits, features, t_logits.expand(k, -1, -1),
                                        t_features.expand(k, -1, -1), y.expand(k, -1))
    for name, value in stacked.items():
        assert value.shape == (k,)
        assert all(torch.equal(value[i], singles[i][name]) for i in range(k)), name


def test_what_the_new_families_still_do_not_batch(mnist1d):
    datas = [_subset(mnist1d)(s) for s in SEEDS]
    assert "dropout" in why_sequential([_transformer(s, dropout=0.1) for s in SEEDS], KD(), datas)
    cnn = [STUDENTS["cnn1d"](s) for s in SEEDS]
    assert "'features.2'" in why_sequential(cnn, RKD(layer="features.2"), datas)  # only the penultimate is stacked
    assert "logits-only" in why_sequential(cnn, EmbeddingMSE(125, 125), datas)  # a projector: trainable parts
    assert "differ in class" in why_not_stackable([cnn[0], STUDENTS["mlp"](0)])
    assert why_not_stackable([MLP(40, (8,)), MLP(40, (8,))]) is None


def test_seeds_sharing_a_training_set_share_the_teachers_outputs(mnist1d, teacher):
    """A chapter's ``lambda seed: task.train`` hands every seed the same tensors: the frozen teacher then
    runs once over them, not once per seed, and the students stay bit-identical to one `train` per seed."""
    shared = tuple(t[:300] for t in mnist1d["train"])
    calls = []
    handle = teacher.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    try:
        batched = train_seeds(STUDENTS["mlp"], RKD(), lambda s: shared, SEEDS, teacher=teacher, epochs=1,
                              batch_size=100, progress=False)
    finally:
        handle.remove()
    assert calls == [300]
    reference = _reference(STUDENTS["mlp"], RKD(), lambda s: shared, teacher, epochs=1, batch_size=100)
    for a, b in zip(batched[0], reference[0]):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
