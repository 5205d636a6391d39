"""The one training loop and evaluation."""

import pytest
import torch

from kdlib import data
from kdlib.methods import CE, KD, LogitMatching, METHODS
from kdlib.models import MLP
from kdlib.train import evaluate, expected_calibration_error, metrics_from_logits, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def _run(digits, method, seed=0, teacher=None, epochs=3):
    torch.manual_seed(seed)
    student = MLP(hidden=(16,))
    hist = train(student, method, digits["train"], teacher=teacher, epochs=epochs, batch_size=64,
                 lr=3e-3, seed=seed, progress=False)
    return student, hist


def test_train_is_deterministic_at_a_fixed_seed(digits):
    a, hist_a = _run(digits, CE(), seed=3)
    b, hist_b = _run(digits, CE(), seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert hist_a == hist_b
    c, _ = _run(digits, CE(), seed=4)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_history_has_one_entry_per_term_and_epoch(digits):
    teacher = MLP(hidden=(32,)).eval()
    _, hist = _run(digits, KD(temperature=4.0, alpha=0.9), teacher=teacher, epochs=3)
    assert set(hist) == {"loss", "lr", "kd", "ce"}
    assert all(len(v) == 3 for v in hist.values())
    assert hist["loss"][0] == pytest.approx(hist["kd"][0] + hist["ce"][0], rel=1e-5)


def test_training_reduces_the_loss_and_learns(digits):
    student, hist = _run(digits, CE(), epochs=15)
    assert hist["loss"][-1] < hist["loss"][0]
    assert evaluate(student, digits["test"])["acc"] > 80


# methods whose constructor needs the models' dimensions, or a fit on teacher embeddings
# first, take their two-step runs in their own test files (test_dhkd.py, test_lelp.py)
NEEDS_SETUP = {"dhkd", "lelp", "subclass_kd", "embedding_mse", "random_teachers", "tgeo", "intermediate_match", "rkd", "pesf", "dml", "bdkd", "tcn", "hard", "trg", "ofa", "fitnet", "kd3", "edgefd", "orc"}


def test_registry_names_every_method_file():
    from pathlib import Path

    import kdlib.methods as pkg

    # every file that defines a Method registers one (closed-form chapters hold plain functions)
    files = {p.stem for p in Path(pkg.__file__).parent.glob("*.py")
             if "(Method)" in p.read_text() or "(SubclassKD)" in p.read_text()} - {"__init__", "base"}
    modules = {cls.__module__.rsplit(".", 1)[-1] for cls in METHODS.values()}
    assert files and files <= modules


@pytest.mark.parametrize("name", sorted(set(METHODS) - NEEDS_SETUP))
def test_every_registered_method_takes_two_steps(digits, name):
    teacher = MLP(hidden=(32,)).eval()
    method = METHODS[name]()
    x, y = digits["train"][0][:128], digits["train"][1][:128]
    torch.manual_seed(0)
    student = MLP(hidden=(16,))
    hist = train(student, method, (x, y), teacher=teacher, epochs=1, batch_size=64, progress=False)
    assert hist["loss"] and all(torch.isfinite(torch.tensor(v)).all() for v in hist.values())


def test_teacher_is_frozen_and_unchanged(digits):
    teacher = MLP(hidden=(32,))
    before = [p.clone() for p in teacher.parameters()]
    _run(digits, LogitMatching(), teacher=teacher, epochs=1)
    assert not teacher.training
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_steps_mode_with_a_batch_function():
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))

    def batches(step, generator):
        idx = torch.randint(0, 256, (32,), generator=generator)
        return x[idx], y[idx]

    hist = train(MLP(hidden=(8,)), CE(), batches, steps=20, progress=False)
    assert len(hist["loss"]) == 20


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="epochs= or steps="):
        train(MLP(), CE(), (torch.randn(4, 64), torch.zeros(4, dtype=torch.long)), progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        train(MLP(), CE(), (torch.randn(4, 64), torch.zeros(4, dtype=torch.long)), epochs=1,
              optimizer="rmsprop-ish", progress=False)


def test_lr_milestones_decay_the_learning_rate():
    data_ = (torch.randn(64, 64), torch.randint(0, 10, (64,)))
    hist = train(MLP(hidden=(8,)), CE(), data_, epochs=4, batch_size=64, lr=0.1, optimizer="sgd",
                 lr_milestones=[2, 3], progress=False)
    assert hist["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_metrics_from_logits():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])
    target = torch.tensor([0, 1, 1, 1])
    m = metrics_from_logits(logits, target, teacher_logits=logits)
    assert m["acc"] == pytest.approx(75.0)
    assert m["agreement"] == pytest.approx(100.0)
    # all four predictions have confidence ~0.9933 in one bin with accuracy 0.75
    assert m["ece"] == pytest.approx(100 * abs(0.75 - torch.softmax(torch.tensor([5.0, 0.0]), 0)[0].item()), rel=1e-4)


def test_ece_is_zero_for_a_calibrated_predictor():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.0)
