"""BD-KD: the balanced forward/reverse KL mix (limits, golden values, brute force, zero at equality),
its entropy-gap weights, no gradient into the detached target, and short online runs of every variant."""

import math

import pytest
import torch

from kdlib import data
from kdlib.losses import bdkd_loss, entropy_gap_weights, kd_loss, entropy, reverse_kl
from kdlib.cohort import Cohort
from kdlib.methods.bdkd import DIVERGENCES, OnlineKD, online_pair
from kdlib.methods.dml import DML
from kdlib.models.small import MLP
from kdlib.train import evaluate, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def seeded():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)


def brute(s, t, w):
    """The mix by loops over samples and classes, in float64."""
    total = 0.0
    for i in range(len(s)):
        ps, pt = s[i].double().softmax(-1), t[i].double().softmax(-1)
        fwd = sum(float(pt[c] * (pt[c].log() - ps[c].log())) for c in range(len(ps)))
        rev = sum(float(ps[c] * (ps[c].log() - pt[c].log())) for c in range(len(ps)))
        total += (1 - w[i]) * fwd + w[i] * rev
    return total / len(s)


def test_limits_are_forward_and_reverse_kl():
    s, t = seeded()
    assert torch.allclose(bdkd_loss(s, t, 0.0), kd_loss(s, t, 1.0))
    assert torch.allclose(bdkd_loss(s, t, 1.0), reverse_kl(s, t))
    mid = bdkd_loss(s, t, 0.5)
    assert torch.allclose(mid, 0.5 * (kd_loss(s, t, 1.0) + reverse_kl(s, t)))
    assert not torch.allclose(kd_loss(s, t, 1.0), reverse_kl(s, t))  # the limits differ on this case


def test_golden_values_and_brute_force():
    s, t = seeded()
    w = entropy_gap_weights(s, t)
    assert w.tolist() == [0.0, 0.0, 1.0, 1.0]
    for rw, golden in ((0.0, 0.5777397), (1.0, 0.5878918), (0.5, 0.5828157), (w, 0.5368740)):
        value = bdkd_loss(s, t, rw)
        assert value.item() == pytest.approx(golden, abs=1e-6)
        ws = rw.tolist() if torch.is_tensor(rw) else [rw] * len(s)
        assert value.item() == pytest.approx(brute(s, t, ws), abs=1e-5)
    assert entropy_gap_weights(s, t, sharpness=2.0).sum().item() == pytest.approx(1.8708596, abs=1e-6)


def test_nonnegative_and_zero_at_equality():
    s, t = seeded()
    for rw in (0.0, 0.3, 1.0, torch.rand(4)):
        assert bdkd_loss(s, t, rw) >= 0
        assert bdkd_loss(s, s, rw).abs() < 1e-6
        assert bdkd_loss(s, s + 3.0, rw).abs() < 1e-6  # softmax ignores a shift of the logits


def test_entropy_gap_weights_rule_and_softening():
    sharp, flat = torch.tensor([[8.0, 0, 0]]), torch.zeros(1, 3)
    assert entropy(flat).item() == pytest.approx(math.log(3))
    assert entropy_gap_weights(flat, sharp).item() == 1.0  # student less confident -> reverse KL
    assert entropy_gap_weights(sharp, flat).item() == 0.0  # student more confident -> forward KL
    assert entropy_gap_weights(flat, flat).item() == 0.5  # a tie
    assert entropy_gap_weights(flat, sharp, sharpness=0.0).item() == 0.5  # the fixed mix
    assert 0.5 < entropy_gap_weights(flat, sharp, sharpness=1.0).item() < 1.0
    s = torch.randn(3, 4, requires_grad=True)
    assert not entropy_gap_weights(s, torch.randn(3, 4)).requires_grad


def test_bad_weights_are_rejected():
    s, t = seeded()
    with pytest.raises(ValueError, match="reverse_weight"):
        bdkd_loss(s, t, 1.5)
    with pytest.raises(ValueError, match="reverse_weight"):
        bdkd_loss(s, t, torch.ones(3))
    with pytest.raises(ValueError, match="divergence"):
        OnlineKD("dml")  # DML is kdlib.methods.dml.DML
    with pytest.raises(ValueError, match="sharpness"):
        entropy_gap_weights(s, t, sharpness=-1.0)


def test_each_network_learns_only_through_its_own_terms():
    torch.manual_seed(0)
    pair = online_pair(MLP(hidden=(32,)), MLP(hidden=(8,)))
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    for method in [OnlineKD(d) for d in DIVERGENCES] + [DML(t_squared=False)]:
        terms = method(pair, None, (x, y))
        pair.zero_grad()
        terms["kl_small"].backward()  # the large network's logits are its detached target
        assert all(p.grad is None for p in pair["large"].parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pair["small"].parameters())
        pair.zero_grad()
        terms["kl_large"].backward()
        assert all(p.grad is None for p in pair["small"].parameters())


def test_large_network_term_dml_forward_otherwise_reverse():
    torch.manual_seed(0)
    pair = online_pair(MLP(hidden=(32,)), MLP(hidden=(8,)))
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    zl, zs = pair["large"](x), pair["small"](x)
    dml, bd = DML(t_squared=False)(pair, None, (x, y)), OnlineKD("bdkd")(pair, None, (x, y))
    assert torch.allclose(dml["kl_large"], kd_loss(zl, zs, 1.0))
    assert torch.allclose(bd["kl_large"], reverse_kl(zl, zs))
    assert torch.allclose(dml["kl_small"], kd_loss(zs, zl, 1.0))
    assert OnlineKD("fixed", large_divergence="forward").large_divergence == "forward"
    assert list(dml) == list(bd) == ["ce_small", "kl_small", "ce_large", "kl_large"]  # the same term names


def test_needs_an_online_pair():
    batch = (torch.randn(4, 64), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="online_pair"):
        OnlineKD()(MLP(hidden=(8,)), None, batch)
    with pytest.raises(TypeError, match="online_pair"):
        OnlineKD()(Cohort([MLP(hidden=(8,)), MLP(hidden=(8,))]), None, batch)  # not named large / small


@pytest.mark.parametrize("divergence", ["dml", *DIVERGENCES])
def test_short_online_run_trains_both_networks(digits, divergence):
    x, y = digits["train"][0][:256], digits["train"][1][:256]
    torch.manual_seed(0)
    pair = online_pair(MLP(hidden=(32,)), MLP(hidden=(8,)))
    before = [p.detach().clone() for p in pair.parameters()]
    method = DML(t_squared=False) if divergence == "dml" else OnlineKD(divergence)
    hist = train(pair, method, (x, y), epochs=2, batch_size=64, progress=False)
    assert set(hist) >= {"ce_small", "kl_small", "ce_large", "kl_large"}
    assert all(math.isfinite(v) for v in hist["loss"])
    assert all(not torch.equal(a, b) for a, b in zip(before, pair.parameters()))
    metrics = evaluate(pair, digits["test"])
    assert metrics["acc"] == evaluate(pair["small"], digits["test"])["acc"]  # the pair is scored as its small net
