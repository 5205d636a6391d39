"""Data pruning + KD: the EL2N score (properties, golden values), the pruning rules (sizes, class
balance, which examples are kept), and a short batched KD run on a pruned subset."""

import math

import pytest
import torch

from kdlib.batched import train_seeds
from kdlib.methods import KD
from kdlib.experiments.pruning_kd import el2n_scores, kept_per_class, prune, prune_indices
from kdlib.tasks import make_model


def test_el2n_bounds_and_limits():
    g = torch.Generator().manual_seed(0)
    z, y = 5 * torch.randn(64, 10, generator=g), torch.randint(0, 10, (64,), generator=g)
    s = el2n_scores(z, y)
    assert s.shape == (64,) and (s >= 0).all() and (s <= math.sqrt(2) + 1e-6).all()
    confident = torch.full((3, 4), -50.0)
    confident[torch.arange(3), torch.tensor([0, 2, 3])] = 50.0
    assert torch.allclose(el2n_scores(confident, torch.tensor([0, 2, 3])), torch.zeros(3), atol=1e-6)
    wrong = el2n_scores(confident, torch.tensor([1, 1, 1]))  # sure of the wrong class: the maximum, sqrt(2)
    assert torch.allclose(wrong, torch.full((3,), math.sqrt(2)), atol=1e-6)
    uniform = el2n_scores(torch.zeros(1, 4), torch.tensor([0]))  # ((3/4)^2 + 3 (1/4)^2)^(1/2)
    assert float(uniform) == pytest.approx(math.sqrt(0.75), abs=1e-6)


def test_el2n_golden_and_shift_invariance():
    z = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    y = torch.tensor([2, 0])
    expected = torch.tensor([0.42433612, 0.57478798])  # numpy in float64: softmax, L2 distance to the one-hot
    assert torch.allclose(el2n_scores(z, y), expected, atol=1e-6)
    assert torch.allclose(el2n_scores(z + 7.0, y), expected, atol=1e-6)
    assert not el2n_scores(z.requires_grad_(), y).requires_grad


def test_el2n_bad_shapes():
    with pytest.raises(ValueError, match="el2n_scores"):
        el2n_scores(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


def _toy(n_per_class=(20, 30, 50)):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.arange(len(y), dtype=torch.float32)[:, None].repeat(1, 3)
    return x, y


def test_random_and_score_subsets_have_the_same_class_counts():
    x, y = _toy()
    scores = torch.rand(len(y), generator=torch.Generator().manual_seed(1))
    for f in (0.01, 0.1, 0.5, 0.9):
        r, s = prune_indices(y, f, None, seed=3), prune_indices(y, f, scores)
        counts = kept_per_class(y, f)
        for c, n in counts.items():
            assert int((y[r] == c).sum()) == n == int((y[s] == c).sum())
        assert len(torch.unique(r)) == len(r)


def test_score_pruning_keeps_the_hardest_of_each_class():
    x, y = _toy()
    scores = torch.arange(len(y), dtype=torch.float32) % 7  # arbitrary, with ties
    keep = prune_indices(y, 0.3, scores)
    for c in range(3):
        cls = torch.nonzero(y == c).flatten()
        kept = set(keep.tolist()) & set(cls.tolist())
        dropped = set(cls.tolist()) - kept
        assert min(scores[list(kept)]) >= max(scores[list(dropped)])


def test_random_pruning_depends_on_the_seed_only():
    _, y = _toy()
    assert torch.equal(prune_indices(y, 0.3, seed=5), prune_indices(y, 0.3, seed=5))
    assert not torch.equal(prune_indices(y, 0.3, seed=5), prune_indices(y, 0.3, seed=6))


def test_prune_full_fraction_and_bad_input():
    data = _toy()
    assert prune(data, 1.0)[0] is data[0]
    with pytest.raises(ValueError, match="fraction"):
        prune(data, 0.0)
    with pytest.raises(ValueError, match="scores"):
        prune_indices(data[1], 0.5, torch.zeros(3))


def test_short_kd_run_on_pruned_subsets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 40, generator=g), torch.randint(0, 10, (300,), generator=g)
    teacher = make_model("mlp", 10, [16], seed=9, dataset="mnist1d")
    scores = el2n_scores(teacher(x).detach(), y)
    for rule in (None, scores):
        students, hist = train_seeds(lambda s: make_model("mlp", 10, [8], seed=s, dataset="mnist1d"),
                                     KD(temperature=4.0, alpha=0.5), lambda s: prune((x, y), 0.2, rule, seed=s),
                                     [0, 1], teacher=teacher, epochs=2, batch_size=16, progress=False)
        assert len(students) == 2 and all(math.isfinite(h["loss"][-1]) for h in hist)
        assert set(hist[0]) >= {"kd", "ce"}
