"""Intermediate-layer matching (layer_selection): maps, hooks, the hidden loss, the method, a short run."""

import pytest
import torch
import torch.nn.functional as F

from kdlib.methods.layer_selection import (IntermediateMatch, LinearAdapters, hidden_layer_names, hidden_states,
                                           layer_mapping, layer_match_loss, mlp_widths)
from kdlib.models import build
from kdlib.train import evaluate, train


def mlp(hidden, seed=0):
    torch.manual_seed(seed)
    return build("mlp", in_dim=40, hidden=hidden, num_classes=10)


def test_mappings_3_to_6():
    assert layer_mapping("forward", 3, 6) == [1, 3, 5]
    assert layer_mapping("reverse", 3, 6) == [5, 3, 1]
    assert layer_mapping("all-to-one", 3, 6) == [5, 5, 5]
    assert layer_mapping("none", 3, 6) == []
    assert layer_mapping("forward", 2, 2) == [0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_random_mapping_is_injective_in_range_and_seeded(seed):
    m = layer_mapping("random", 3, 6, seed=seed)
    assert len(m) == 3 and len(set(m)) == 3 and all(0 <= j < 6 for j in m)
    assert m == layer_mapping("random", 3, 6, seed=seed)


def test_random_mapping_varies_with_seed():
    assert len({tuple(layer_mapping("random", 3, 6, seed=s)) for s in range(10)}) > 1


@pytest.mark.parametrize("kind", ["forward", "reverse", "all-to-one"])
@pytest.mark.parametrize("ls,lt", [(1, 4), (3, 6), (4, 6), (5, 5)])
def test_mapping_shapes_and_ranges(kind, ls, lt):
    m = layer_mapping(kind, ls, lt)
    assert len(m) == ls and all(0 <= j < lt for j in m)
    if kind != "reverse":
        assert m[-1] == lt - 1  # the last student layer always meets the teacher's last hidden layer


def test_mapping_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown kind"):
        layer_mapping("sideways", 3, 6)
    with pytest.raises(ValueError, match="injective"):
        layer_mapping("random", 4, 3)


def test_hooks_capture_the_hidden_layers():
    model = mlp([7, 5, 3])
    assert hidden_layer_names(model) == ["features.1", "features.3", "features.5"]
    x = torch.randn(4, 40)
    logits, hidden = hidden_states(model, x)
    assert [h.shape for h in hidden] == [(4, 7), (4, 5), (4, 3)]
    # recompute layer by layer: each captured tensor is the ReLU output of its layer
    h = x
    for k, lin in enumerate(m for m in model.features if isinstance(m, torch.nn.Linear)):
        h = F.relu(lin(h))
        torch.testing.assert_close(hidden[k], h)
    torch.testing.assert_close(logits, model.fc(h))
    assert not model.features[1]._forward_hooks  # hooks removed after the pass
    assert mlp_widths(model) == [7, 5, 3]


def test_loss_zero_at_equality_positive_otherwise_and_golden():
    torch.manual_seed(0)
    t = [torch.randn(8, 6), torch.randn(8, 4)]
    assert layer_match_loss([x.clone() for x in t], t).item() == 0.0
    a = [x + 1.0 for x in t]  # every entry off by one: per pair the sum over D is D
    torch.testing.assert_close(layer_match_loss(a, t), torch.tensor((6.0 + 4.0) / 2))
    assert layer_match_loss([], []).item() == 0.0
    with pytest.raises(ValueError):
        layer_match_loss(a, t[:1])


def test_adapters_widths():
    ad = LinearAdapters([3, 4], [6, 8])
    out = ad([torch.randn(2, 3), torch.randn(2, 4)])
    assert [o.shape for o in out] == [(2, 6), (2, 8)]


def test_method_terms_and_no_gradient_into_teacher():
    student, teacher = mlp([5, 5, 5], seed=1), mlp([8] * 6, seed=2)
    x, y = torch.randn(16, 40), torch.randint(0, 10, (16,))
    method = IntermediateMatch(layer_mapping("forward", 3, 6), mlp_widths(student), mlp_widths(teacher))
    terms = method(student, teacher, (x, y))
    assert set(terms) == {"ce", "kd", "hidden"} and all(v.item() >= 0 for v in terms.values())
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in method.adapters.parameters())
    assert student.features[0].weight.grad is not None
    none = IntermediateMatch([], mlp_widths(student), mlp_widths(teacher))
    assert set(none(student, teacher, (x, y))) == {"ce", "kd"}
    with pytest.raises(ValueError, match="outside"):
        IntermediateMatch([0, 1, 6], mlp_widths(student), mlp_widths(teacher))


def test_short_run_lowers_the_hidden_loss():
    torch.manual_seed(0)
    x, y = torch.randn(200, 40), torch.randint(0, 10, (200,))
    teacher, student = mlp([16] * 4, seed=3), mlp([8] * 2, seed=4)
    method = IntermediateMatch(layer_mapping("reverse", 2, 4), mlp_widths(student), mlp_widths(teacher))
    before = method(student, teacher, (x, y))["hidden"].item()
    hist = train(student, method, (x, y), teacher=teacher, epochs=5, batch_size=50, lr=1e-2, seed=0, progress=False)
    after = method(student, teacher, (x, y))["hidden"].item()
    assert after < before and len(hist["loss"]) == 5
    assert 0 <= evaluate(student, (x, y))["acc"] <= 100
